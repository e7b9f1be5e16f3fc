"""RFC 3261 §17 transaction state machines on fake time: timers A-K, retransmissions,
absorbing retransmitted requests, matching by branch and by the RFC 2543 rules."""

from __future__ import annotations

import pytest
from tests.telephony.sip_support import CLIENT, CLIENT_TCP, RecordingSender, request

from sparklecomm.telephony.sip import SipMessage, SipResponse, build_response
from sparklecomm.telephony.sip.timers import FakeScheduler, TimerConfig
from sparklecomm.telephony.sip.transaction import (
    ServerTransaction,
    State,
    TransactionLayer,
    server_key,
)
from sparklecomm.telephony.sip.transport import Peer

SERVER = Peer("UDP", "127.0.0.1", 5060)
SERVER_TCP = Peer("TCP", "127.0.0.1", 5060)


class TimedSender(RecordingSender):
    """Records the fake time of each send, too."""

    def __init__(self, clock: FakeScheduler) -> None:
        super().__init__()
        self.clock = clock
        self.times: list[float] = []

    def send(self, message: SipMessage, peer: Peer) -> None:
        super().send(message, peer)
        self.times.append(round(self.clock.now, 3))


class World:
    def __init__(self) -> None:
        self.clock = FakeScheduler()
        self.sender = TimedSender(self.clock)
        self.new: list[ServerTransaction] = []
        self.layer = TransactionLayer(self.sender, self.clock, self.new.append)

    def run_recording_times(self, seconds: float) -> list[float]:
        """Advance fake time; return the times at which something was sent meanwhile."""
        seen = len(self.sender.times)
        self.clock.advance(seconds)
        return self.sender.times[seen:]


@pytest.fixture
def world() -> World:
    return World()


# ---- server non-INVITE ---------------------------------------------------------------


def test_server_non_invite_absorbs_retransmissions_and_ends_after_timer_j(world: World) -> None:
    register = request("REGISTER")
    world.layer.receive(register, CLIENT)
    assert len(world.new) == 1
    transaction = world.new[0]
    assert transaction.state is State.TRYING

    world.layer.receive(request("REGISTER"), CLIENT)  # retransmission while Trying
    assert world.sender.sent == [] and len(world.new) == 1

    transaction.respond(build_response(register, 200))
    assert transaction.state is State.COMPLETED
    world.layer.receive(request("REGISTER"), CLIENT)
    assert world.sender.statuses() == [200, 200]
    assert world.layer.stats.retransmissions_absorbed == 2
    # The repeated response is the same one (same To tag).
    first, second = (m for m, _ in world.sender.sent)
    assert first.to.tag == second.to.tag

    world.clock.advance(31.9)
    assert transaction.state is State.COMPLETED
    world.clock.advance(0.2)  # Timer J = 64*T1 = 32 s
    assert transaction.state is State.TERMINATED
    assert world.layer.server_count == 0


def test_server_non_invite_over_tcp_terminates_at_once(world: World) -> None:
    world.layer.receive(request("OPTIONS", transport="TCP"), CLIENT_TCP)
    transaction = world.new[0]
    transaction.respond(build_response(transaction.request, 200))
    world.clock.advance(0)
    assert transaction.state is State.TERMINATED
    assert world.sender.sent[0][1] == CLIENT_TCP


def test_server_non_invite_repeats_provisional_in_proceeding(world: World) -> None:
    world.layer.receive(request("REGISTER"), CLIENT)
    transaction = world.new[0]
    transaction.respond(build_response(transaction.request, 100))
    world.layer.receive(request("REGISTER"), CLIENT)
    assert transaction.state is State.PROCEEDING
    assert world.sender.statuses() == [100, 100]


def test_response_goes_to_sent_by_port_without_rport(world: World) -> None:
    world.layer.receive(request("OPTIONS", sent_by="127.0.0.1:5077"), CLIENT)
    transaction = world.new[0]
    assert transaction.reply_to == Peer("UDP", "127.0.0.1", 5077)


# ---- server INVITE -------------------------------------------------------------------


def test_server_invite_sends_trying_after_200ms(world: World) -> None:
    world.layer.receive(request("INVITE"), CLIENT)
    world.clock.advance(0.19)
    assert world.sender.sent == []
    world.clock.advance(0.02)
    assert world.sender.statuses() == [100]
    response = world.sender.sent[0][0]
    assert isinstance(response, SipResponse) and response.to.tag is None


def test_server_invite_retransmits_error_with_timer_g_until_ack(world: World) -> None:
    world.layer.receive(request("INVITE"), CLIENT)
    transaction = world.new[0]
    transaction.respond(build_response(transaction.request, 486, to_tag="tt"))
    times = world.run_recording_times(8.0)
    # Sent at 0; Timer G resends at 0.5, 1.5, 3.5, 7.5 (doubling, capped at T2=4).
    assert times == [0.5, 1.5, 3.5, 7.5]
    world.layer.receive(request("ACK", to_tag="tt"), CLIENT)
    assert transaction.state is State.CONFIRMED
    assert world.run_recording_times(4.0) == []
    world.clock.advance(1.1)  # Timer I = T4 = 5 s
    assert transaction.state is State.TERMINATED


def test_server_invite_gives_up_after_timer_h(world: World) -> None:
    world.layer.receive(request("INVITE"), CLIENT)
    transaction = world.new[0]
    transaction.respond(build_response(transaction.request, 404))
    world.clock.advance(31.9)
    assert transaction.state is State.COMPLETED
    sent = len(world.sender.sent)
    assert sent >= 9  # 0.5, 1.5, 3.5, 7.5, 11.5 ... 31.5
    world.clock.advance(0.2)
    assert transaction.state is State.TERMINATED


def test_server_invite_repeats_final_for_retransmitted_invite(world: World) -> None:
    world.layer.receive(request("INVITE"), CLIENT)
    transaction = world.new[0]
    transaction.respond(build_response(transaction.request, 180))
    world.layer.receive(request("INVITE"), CLIENT)
    transaction.respond(build_response(transaction.request, 603))
    world.layer.receive(request("INVITE"), CLIENT)
    assert world.sender.statuses() == [180, 180, 603, 603]


def test_server_invite_2xx_enters_accepted_and_hands_ack_to_tu(world: World) -> None:
    world.layer.receive(request("INVITE", transport="TCP"), CLIENT_TCP)
    transaction = world.new[0]
    acks: list[str] = []
    transaction.on_ack = lambda ack: acks.append(ack.method)
    transaction.respond(build_response(transaction.request, 200, to_tag="x"))
    assert transaction.state is State.ACCEPTED
    world.layer.receive(request("ACK", transport="TCP", to_tag="x"), CLIENT_TCP)
    assert acks == ["ACK"]
    world.clock.advance(32.1)  # Timer L
    assert transaction.state is State.TERMINATED


def test_cancel_matches_its_invite_but_is_its_own_transaction(world: World) -> None:
    world.layer.receive(request("INVITE"), CLIENT)
    world.layer.receive(request("CANCEL"), CLIENT)
    assert [t.request.method for t in world.new] == ["INVITE", "CANCEL"]
    assert world.layer.find_invite(world.new[1].request) is world.new[0]


def test_rfc2543_fallback_matching_without_magic_cookie(world: World) -> None:
    world.layer.receive(request("INVITE", branch=None), CLIENT)
    world.layer.receive(request("INVITE", branch=None), CLIENT)
    assert len(world.new) == 1
    transaction = world.new[0]
    transaction.respond(build_response(transaction.request, 486, to_tag="t9"))
    world.layer.receive(request("ACK", branch=None, to_tag="t9"), CLIENT)
    assert transaction.state is State.CONFIRMED
    # A different CSeq is a new transaction.
    world.layer.receive(request("INVITE", branch=None, cseq=2), CLIENT)
    assert len(world.new) == 2


def test_branches_without_cookie_and_sent_by_are_part_of_the_key() -> None:
    a = server_key(request("OPTIONS", branch="z9hG4bK1", sent_by="127.0.0.1:5099"))
    b = server_key(request("OPTIONS", branch="z9hG4bK1", sent_by="127.0.0.1:5098"))
    assert a != b
    assert server_key(request("ACK")) == server_key(request("INVITE"))


def test_stray_ack_is_counted_and_passed_on(world: World) -> None:
    strays: list[str] = []
    world.layer.on_stray_ack = lambda ack, peer: strays.append(ack.call_id)
    world.layer.receive(request("ACK"), CLIENT)
    assert strays == ["call-1@test"] and world.layer.stats.stray_acks == 1


# ---- client non-INVITE ---------------------------------------------------------------


def test_client_non_invite_retransmits_with_timer_e_and_times_out_with_f(world: World) -> None:
    got: list[int] = []
    world.layer.send_request(request("OPTIONS"), SERVER, lambda r: got.append(r.status))
    times = world.run_recording_times(12.0)
    assert times == [0.5, 1.5, 3.5, 7.5, 11.5]  # E doubles up to T2 = 4 s
    world.clock.advance(32.0 - 12.0 - 0.01)
    assert got == []
    world.clock.advance(0.02)  # Timer F
    assert got == [408]
    assert world.layer.client_count == 0


def test_client_non_invite_provisional_sets_interval_to_t2(world: World) -> None:
    got: list[int] = []
    req = request("REGISTER")
    world.layer.send_request(req, SERVER, lambda r: got.append(r.status))
    world.layer.receive(build_response(req, 100), SERVER)
    times = world.run_recording_times(9.0)
    assert times == [0.5, 4.5, 8.5]
    world.layer.receive(build_response(req, 200), SERVER)
    world.layer.receive(build_response(req, 200), SERVER)  # retransmission: not passed up
    assert got == [100, 200]
    world.clock.advance(5.1)  # Timer K = T4
    assert world.layer.client_count == 0


def test_client_over_tcp_never_retransmits(world: World) -> None:
    got: list[int] = []
    world.layer.send_request(
        request("OPTIONS", transport="TCP"), SERVER_TCP, lambda r: got.append(r.status)
    )
    assert world.run_recording_times(31.0) == []
    world.clock.advance(1.1)
    assert got == [408]


def test_client_needs_an_rfc3261_branch(world: World) -> None:
    with pytest.raises(ValueError, match="branch"):
        world.layer.send_request(request("OPTIONS", branch="old"), SERVER, lambda r: None)


# ---- client INVITE -------------------------------------------------------------------


def test_client_invite_timer_a_doubles_and_b_times_out(world: World) -> None:
    got: list[int] = []
    world.layer.send_request(request("INVITE"), SERVER, lambda r: got.append(r.status))
    times = world.run_recording_times(32.2)
    assert times == [0.5, 1.5, 3.5, 7.5, 15.5, 31.5]  # no T2 cap for INVITE
    assert got == [408]


def test_client_invite_error_is_acked_and_ack_repeated(world: World) -> None:
    got: list[int] = []
    invite = request("INVITE")
    transaction = world.layer.send_request(invite, SERVER, lambda r: got.append(r.status))
    world.layer.receive(build_response(invite, 180, to_tag="r1"), SERVER)
    assert world.run_recording_times(2.0) == []  # provisional stops Timer A
    busy = build_response(invite, 486, to_tag="r1")
    world.layer.receive(busy, SERVER)
    world.layer.receive(busy, SERVER)
    assert got == [180, 486]
    assert world.sender.methods() == ["INVITE", "ACK", "ACK"]
    ack = world.sender.sent[1][0]
    assert ack.cseq.number == invite.cseq.number and ack.cseq.method == "ACK"
    assert ack.to.tag == "r1" and ack.top_via.branch == invite.top_via.branch
    assert transaction.state is State.COMPLETED
    world.clock.advance(32.1)  # Timer D
    assert transaction.state is State.TERMINATED


def test_client_invite_2xx_retransmissions_go_to_the_tu(world: World) -> None:
    got: list[int] = []
    invite = request("INVITE")
    transaction = world.layer.send_request(invite, SERVER, lambda r: got.append(r.status))
    ok = build_response(invite, 200, to_tag="r2")
    world.layer.receive(ok, SERVER)
    world.layer.receive(ok, SERVER)
    assert got == [200, 200] and transaction.state is State.ACCEPTED
    assert world.sender.methods() == ["INVITE"]  # the TU, not the transaction, ACKs a 2xx
    world.clock.advance(32.1)  # Timer M
    assert transaction.state is State.TERMINATED


def test_timers_are_configurable_for_tests() -> None:
    sender = RecordingSender()
    clock = FakeScheduler()
    layer = TransactionLayer(sender, clock, lambda t: None, timers=TimerConfig(t1=0.01, t2=0.04))
    got: list[int] = []
    layer.send_request(request("OPTIONS"), SERVER, lambda r: got.append(r.status))
    clock.advance(0.65)
    assert got == [408]
    assert len(sender.sent) > 5
