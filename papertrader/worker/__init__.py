"""A worker: the edge clients talk to; passes every command on to the master, stamped."""
