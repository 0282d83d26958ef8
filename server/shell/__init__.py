"""The shell: command line, commands, doctor, client configuration, transports, the app factory and the registry.

It sits above the kernel and reaches providers only through the registry of provider faces."""
