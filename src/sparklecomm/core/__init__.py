"""Pure building blocks shared by every domain: clock, ids, errors and the event envelope."""
