"""Use cases of the routing service: they combine the pure domain with the store behind `ports`."""
