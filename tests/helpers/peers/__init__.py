"""Real protocol stacks for tests/live: each module is a server and a client, run in a network namespace."""
