"""SIP dialogs (RFC 3261 §12): the state two user agents share for one call, and the
requests sent within it.

A :class:`Dialog` is made from the INVITE and the response that creates it, on the side
that answers (:meth:`Dialog.as_uas`, §12.1.1) or that called (:meth:`Dialog.as_uac`,
§12.1.2). It holds the Call-ID, the local and remote tags, the local and remote CSeq, the
route set and the remote target, and builds the requests we send within it
(:meth:`Dialog.request`, §12.2.1.1: Request-URI the remote target, or the first route when
that is a strict router, with Route headers from the route set). :meth:`Dialog.accept`
checks an incoming in-dialog request's CSeq (§12.2.2) and applies a target refresh.
Pure code: no I/O, no clock.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass, field

from sparklecomm.telephony.sip.fields import Address
from sparklecomm.telephony.sip.headers import Headers
from sparklecomm.telephony.sip.message import SipRequest, SipResponse
from sparklecomm.telephony.sip.transport import new_branch
from sparklecomm.telephony.sip.uri import SipUri, Uri

TARGET_REFRESH = frozenset({"INVITE", "UPDATE", "SUBSCRIBE", "NOTIFY", "REFER"})


class DialogState(enum.Enum):
    EARLY = "early"
    CONFIRMED = "confirmed"
    TERMINATED = "terminated"


@dataclass(slots=True)
class Dialog:
    """One dialog, seen from our side."""

    call_id: str
    local_tag: str
    remote_tag: str
    local_uri: Address
    """Our address (From in requests we send), without tag."""
    remote_uri: Address
    """The peer's address (To in requests we send), without tag."""
    remote_target: Uri
    local_contact: str
    local_seq: int
    remote_seq: int | None = None
    route_set: tuple[Address, ...] = ()
    state: DialogState = DialogState.EARLY
    secure: bool = False
    extra: dict[str, str] = field(default_factory=dict)
    _from_to: tuple[Address, str, Address, str, str, str] | None = field(
        default=None, init=False, repr=False, compare=False
    )
    """(local URI, local tag, remote URI, remote tag, From value, To value): the From and
    To written for the last request, reused while the addresses and tags stay the same."""

    @property
    def id(self) -> tuple[str, str, str]:
        """(Call-ID, local tag, remote tag)."""
        return (self.call_id, self.local_tag, self.remote_tag)

    # ---- creation --------------------------------------------------------------------

    @classmethod
    def as_uas(
        cls, request: SipRequest, *, local_tag: str, local_contact: str, local_seq: int = 0
    ) -> Dialog:
        """The dialog our response (with To tag ``local_tag``) to ``request`` creates:
        route set from Record-Route in order, remote target from the Contact (§12.1.1)."""
        contacts = request.contacts
        target = contacts[0].uri if contacts else request.from_.uri
        return cls(
            call_id=request.call_id,
            local_tag=local_tag,
            remote_tag=request.from_.tag or "",
            local_uri=_without_tag(request.to),
            remote_uri=_without_tag(request.from_),
            remote_target=target,
            local_contact=local_contact,
            local_seq=local_seq,
            remote_seq=request.cseq.number,
            route_set=request.record_routes,
            secure=isinstance(request.uri, SipUri) and request.uri.secure,
        )

    @classmethod
    def as_uac(cls, request: SipRequest, response: SipResponse) -> Dialog:
        """The dialog a 1xx (with To tag) or 2xx to our ``request`` creates: route set from
        Record-Route in reverse order, remote target from the response's Contact
        (§12.1.2)."""
        contacts = response.contacts
        contact = request.headers.get("Contact") or ""
        dialog = cls(
            call_id=request.call_id,
            local_tag=request.from_.tag or "",
            remote_tag=response.to.tag or "",
            local_uri=_without_tag(request.from_),
            remote_uri=_without_tag(request.to),
            remote_target=contacts[0].uri if contacts else request.uri,
            local_contact=contact,
            local_seq=request.cseq.number,
            route_set=tuple(reversed(response.record_routes)),
            secure=isinstance(request.uri, SipUri) and request.uri.secure,
        )
        if 200 <= response.status < 300:
            dialog.state = DialogState.CONFIRMED
        return dialog

    # ---- incoming --------------------------------------------------------------------

    def matches(self, message: SipRequest) -> bool:
        """Whether an incoming request belongs to this dialog (Call-ID and tags)."""
        return (
            message.call_id == self.call_id
            and message.to.tag == self.local_tag
            and (message.from_.tag or "") == self.remote_tag
        )

    def accept(self, request: SipRequest) -> bool:
        """Check the CSeq of an in-dialog request (False: answer 500, §12.2.2) and apply
        a target refresh (Contact of a re-INVITE/UPDATE ...)."""
        if request.method in ("ACK", "CANCEL"):
            return True
        number = request.cseq.number
        if self.remote_seq is not None and number <= self.remote_seq:
            return False
        self.remote_seq = number
        if request.method in TARGET_REFRESH and request.contacts:
            self.remote_target = request.contacts[0].uri
        return True

    def refresh_target(self, response: SipResponse) -> None:
        """A 2xx to a target-refresh request we sent may carry a new Contact."""
        if response.contacts:
            self.remote_target = response.contacts[0].uri

    def confirm(self, response: SipResponse) -> None:
        """An early dialog becomes confirmed on a 2xx (§12.1.2): the route set and target
        are those of the 2xx."""
        if self.state is DialogState.EARLY:
            self.route_set = tuple(reversed(response.record_routes))
            self.refresh_target(response)
        self.state = DialogState.CONFIRMED

    # ---- outgoing --------------------------------------------------------------------

    def next_seq(self) -> int:
        self.local_seq += 1
        return self.local_seq

    def request(
        self,
        method: str,
        via: str,
        *,
        cseq: int | None = None,
        body: bytes = b"",
        content_type: str | None = None,
        headers: Headers | None = None,
        branch: str | None = None,
    ) -> SipRequest:
        """A request within the dialog (§12.2.1.1). ``via`` is our sent-by with transport
        (``SIP/2.0/UDP 192.0.2.1:5060``); a new branch is added unless given. CSeq is the
        next local number, except for ACK and CANCEL, which take ``cseq``."""
        if method in ("ACK", "CANCEL"):
            if cseq is None:
                raise ValueError(f"{method} needs the CSeq number of its INVITE")
            number = cseq
        else:
            number = self.next_seq() if cseq is None else cseq
        uri: Uri = self.remote_target
        routes = list(self.route_set)
        if routes and isinstance(routes[0].uri, SipUri) and not routes[0].uri.lr:
            # Strict router (§12.2.1.1): it becomes the Request-URI; the target goes last.
            uri = routes[0].uri
            routes = [*routes[1:], Address(self.remote_target)]
        out = Headers()
        out.add("Via", f"{via};branch={branch or new_branch()};rport")
        for route in routes:
            out.add("Route", str(route))
        out.add("Max-Forwards", "70")
        from_to = self._from_to
        if (
            from_to is None
            or from_to[0] is not self.local_uri
            or from_to[1] != self.local_tag
            or from_to[2] is not self.remote_uri
            or from_to[3] != self.remote_tag
        ):
            from_to = (
                self.local_uri,
                self.local_tag,
                self.remote_uri,
                self.remote_tag,
                str(self.local_uri.with_tag(self.local_tag)),
                str(self.remote_uri.with_tag(self.remote_tag)),
            )
            self._from_to = from_to
        out.add("From", from_to[4])
        out.add("To", from_to[5])
        out.add("Call-ID", self.call_id)
        out.add("CSeq", f"{number} {method}")
        if method not in ("ACK", "CANCEL", "BYE") and self.local_contact:
            out.add("Contact", self.local_contact)
        if headers is not None:
            for name, value in headers:
                out.add(name, value)
        if body:
            out.add("Content-Type", content_type or "application/sdp")
        return SipRequest(method, uri, out, body)

    def next_hop(self) -> Uri:
        """Where a request goes: the first route, else the remote target (§8.1.2)."""
        return self.route_set[0].uri if self.route_set else self.remote_target


def _without_tag(address: Address) -> Address:
    return Address(address.uri, address.display_name, address.params.without("tag"))
