"""The portal every master serves: the fleet and each job's page, read-only, in a browser."""
