"""The kernel: state, guard, tokens, audit, redaction, errors, upstream HTTP, schema, the call pipeline.

It knows no provider and no command line: providers and the shell import it, never the other way round."""
