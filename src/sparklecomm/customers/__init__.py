"""Customer records, interaction notes, and the desk's reason and disposition codes.

The agent desktop pops an offer with the customer's record (name, number, VIP tier,
attributes), the customer's past interactions (read from the routing event stream, so nothing
is counted twice) and the notes agents left on them. Start with ``service.py``.
"""
