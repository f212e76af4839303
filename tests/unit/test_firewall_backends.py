"""The backends: which batch each verb sends, state only moving on success, nft errors."""

import asyncio
import os
import shutil

import pytest

from shoal.errors import Conflict, ShoalError
from shoal.firewall import (EndpointConfig, FakeFirewall, Firewall, NetworkConfig, Nft, NftError, NftFirewall,
                            NoneFirewall, PortMapping, State)
from shoal.firewall.nft import batch_error, parse_errors
from shoal.firewall.ruleset import cleanup_batch, full_batch

NET = NetworkConfig("br-a", ("10.1.0.0/24",))
NO_ICC = NetworkConfig("br-b", ("10.2.0.0/24",), icc=False)
WEB = PortMapping("tcp", 8080, "10.1.0.2", 80, "br-a")


class RecordingNft(Nft):
    """An Nft that keeps the batches instead of running them; `fail` refuses the next one."""

    def __init__(self):
        super().__init__()
        object.__setattr__(self, "batches", [])
        object.__setattr__(self, "fail", False)

    def run(self, batch, *, check=False):
        if self.fail:  # True: the next batch; a number: that many batches
            object.__setattr__(self, "fail", self.fail - 1 if self.fail is not True else False)
            raise NftError("refused", (3,), batch)
        self.batches.append(batch)


def run(coro):
    return asyncio.run(coro)


def test_backends_satisfy_the_protocol():
    backends: list[Firewall] = [NftFirewall(RecordingNft()), NoneFirewall(), FakeFirewall()]
    assert [b.name for b in backends] == ["nftables", "none", "fake"]


def test_nft_backend_sends_full_then_only_changes():
    nft = RecordingNft()
    fw = NftFirewall(nft)

    async def go():
        await fw.apply_state(State((NET,)))
        await fw.add_endpoint(EndpointConfig("br-a", "veth0"))  # ICC on: nothing to send
        await fw.add_network(NO_ICC)
        await fw.add_endpoint(EndpointConfig("br-b", "veth1"))
        await fw.add_ports([WEB])
        await fw.remove_ports([WEB])
        await fw.remove_network("br-b")
        await fw.remove_network("br-b")  # already gone: nothing to send
        await fw.cleanup()

    run(go())
    assert nft.batches[0] == full_batch(State((NET,)))
    assert len(nft.batches) == 7
    assert nft.batches[2] == 'add element bridge shoal icc_off_ports {\n\t"veth1"\n}\n'
    assert "delete element bridge shoal icc_off_ports" in nft.batches[5]
    assert nft.batches[-1] == cleanup_batch()
    assert fw.state == State()


def test_failed_batch_leaves_state_unchanged():
    """The incremental batch and the full rebuild tried after it both refused: an error."""
    nft = RecordingNft()
    fw = NftFirewall(nft)
    run(fw.apply_state(State((NET,))))
    nft.fail = 2
    with pytest.raises(NftError):
        run(fw.add_ports([WEB]))
    assert fw.state == State((NET,))
    run(fw.add_ports([WEB]))
    assert fw.state.ports == (WEB,)


def test_refused_incremental_batch_is_sent_again_as_a_full_rebuild():
    """Tables changed from outside make element changes fail; one failure must not make
    every later change fail: the step goes through as the full ruleset of the new state."""
    nft = RecordingNft()
    fw = NftFirewall(nft)
    run(fw.apply_state(State((NET,))))
    nft.fail = True
    run(fw.add_ports([WEB]))
    assert fw.state.ports == (WEB,)
    assert nft.batches[-1] == full_batch(State((NET,), ports=(WEB,)))


def test_conflict_is_caught_before_nft_runs():
    nft = RecordingNft()
    fw = NftFirewall(nft)
    run(fw.apply_state(State((NET,), ports=(WEB,))))
    with pytest.raises(Conflict):
        run(fw.add_ports([PortMapping("tcp", 8080, "10.1.0.3", 80, "br-a")]))
    assert len(nft.batches) == 1 and fw.state.ports == (WEB,)


def test_fake_records_and_fails_once():
    fw = FakeFirewall()
    run(fw.apply_state(State((NET,))))
    fw.fail_on = "add_ports"
    with pytest.raises(NftError, match="injected"):
        run(fw.add_ports([WEB]))
    assert fw.state.ports == ()
    run(fw.add_ports([WEB]))
    run(fw.remove_endpoint(EndpointConfig("br-a", "veth9")))
    assert fw.calls == ["apply_state", "add_ports", "add_ports", "remove_endpoint"]
    assert len(fw.batches) == 2 and "dnat4" in fw.batches[1]


def test_none_backend_tracks_state_only():
    fw = NoneFirewall()
    run(fw.apply_state(State((NET,))))
    run(fw.add_ports([WEB]))
    assert fw.state.ports == (WEB,)
    run(fw.cleanup())
    assert fw.state == State()


STDERR = """/dev/stdin:4:5-16: Error: Could not process rule: Operation not supported
    meta ibrname "x" drop
    ^^^^^^^^^^^^
/dev/stdin:9:1-3: Error: syntax error, unexpected junk
junk
^^^
"""


def test_nft_errors_name_lines_and_quote_them():
    batch = "\n".join(["table inet t {", "chain c {", "type filter hook input priority 0;",
                       '    meta ibrname "x" drop', "}", "}", "", "", "junk"]) + "\n"
    assert parse_errors(STDERR) == [(4, "Could not process rule: Operation not supported"),
                                    (9, "syntax error, unexpected junk")]
    err = batch_error(batch, STDERR)
    assert isinstance(err, ShoalError) and err.lines == (4, 9)
    assert 'line 4: Could not process rule: Operation not supported: meta ibrname "x" drop' in err.message
    assert batch_error("x\n", "boom\n").message == "nft failed: boom"


def test_missing_binary_is_an_nft_error():
    with pytest.raises(NftError, match="not found"):
        Nft(binary="/nonexistent/nft").run("")


def test_real_nft_reports_the_failing_line():
    if os.geteuid() != 0 or not shutil.which("nft") or not shutil.which("unshare"):
        pytest.skip("needs root, nft and unshare")
    nft = Nft(prefix=("unshare", "--net"))
    batch = full_batch(State((NET,))) + "add element inet shoal bridges {\n\t\"br-c\",\n\t42 . 42\n}\n"
    with pytest.raises(NftError) as info:
        nft.run(batch, check=True)
    assert info.value.lines == (len(batch.splitlines()) - 1,)
    assert "42 . 42" in info.value.message
