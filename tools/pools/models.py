"""The fleet view's models live in the kernel (server/kernel/fleet.py), where providers reach them too."""

from poolpilot.server.kernel.fleet import (
    Advice,
    Budget,
    Finding,
    Overview,
    OverviewRow,
    ProviderFailure,
    SuggestedCall,
    Thresholds,
)

__all__ = ["Advice", "Budget", "Finding", "Overview", "OverviewRow", "ProviderFailure", "SuggestedCall", "Thresholds"]
