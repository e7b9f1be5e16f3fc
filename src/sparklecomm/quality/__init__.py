"""Quality assurance: scorecards, evaluations of calls (supervisors' reviews and agents'
self-evaluations), the agent's acknowledgement, and month-over-month trends."""
