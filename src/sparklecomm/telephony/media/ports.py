"""RTP/RTCP port pairs: which even ports of the configured range are in use (pure)."""

from __future__ import annotations

from sparklecomm.core.errors import Conflict, InvalidInput


class PortRangeExhausted(Conflict):
    """Every RTP/RTCP port pair of the range is in use (a B2BUA answers 503)."""


class PortAllocator:
    """Hands out even RTP ports (RTCP on the odd port above) from ``[port_min, port_max]``.

    Allocation goes round the range from where the last one stopped, so a port just released
    is the last to be handed out again (late packets of the previous call do not land in the
    next one); a port still in use is never handed out twice.
    """

    def __init__(self, port_min: int, port_max: int) -> None:
        for name, value in (("port_min", port_min), ("port_max", port_max)):
            if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= 65535:
                raise InvalidInput(f"{name} must be a port number 1-65535, not {value!r}")
        first = port_min + (port_min % 2)
        if first + 1 > port_max:
            raise InvalidInput(
                f"the RTP port range {port_min}-{port_max} holds no even/odd (RTP/RTCP) pair",
                field="port_min",
            )
        self.port_min = port_min
        self.port_max = port_max
        self._first = first
        self._last = port_max - 1 if port_max % 2 else port_max - 2
        self.pairs = (self._last - first) // 2 + 1
        self._next = first
        self._in_use: set[int] = set()

    @property
    def in_use(self) -> int:
        """How many pairs are allocated."""
        return len(self._in_use)

    def is_allocated(self, port: int) -> bool:
        return port in self._in_use

    def allocate(self) -> int:
        """The next free even port, marked in use; :class:`PortRangeExhausted` when none is."""
        for _ in range(self.pairs):
            port = self._next
            self._next = port + 2 if port < self._last else self._first
            if port not in self._in_use:
                self._in_use.add(port)
                return port
        raise PortRangeExhausted(
            f"no free RTP/RTCP port pair in {self.port_min}-{self.port_max}: "
            f"all {self.pairs} pairs are in use"
        )

    def release(self, port: int) -> None:
        """Give a pair back (releasing a free port does nothing)."""
        self._in_use.discard(port)
