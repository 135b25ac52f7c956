"""The command-line client: asks the master for workers, then talks to a worker."""
