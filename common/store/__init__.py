"""ZooKeeper: the only code that knows the layout, its records and sessions."""
