"""The network fuzzer (netfuzz.py) for about a minute against the real broker
(issue 24): mutated frames of every advertised api and version, mutated
Produce batches with fixed CRCs (every codec), liveness and memory checks
throughout, then read-back of every accepted batch by two real consumers and
the canary data after kill -9.

The seed is fixed so that CI is deterministic; NETFUZZ_SEED picks another
and NETFUZZ_SECONDS a longer run. A failure prints the seed, and

    python tests/clients/netfuzz.py --seconds 60 --seed SEED

replays it outside pytest.
"""
import os

import pytest

import netfuzz
from brokerproc import corelog_bin

SECONDS = float(os.environ.get("NETFUZZ_SECONDS", "60"))
SEED = int(os.environ.get("NETFUZZ_SEED", "24"))


@pytest.mark.slow
@pytest.mark.timeout(SECONDS + 150)
def test_network_fuzz(tmp_path):
    print("netfuzz seed %d (replay: python tests/clients/netfuzz.py --seconds %.0f --seed %d)"
          % (SEED, SECONDS, SEED))
    try:
        fuzzer = netfuzz.run(corelog_bin(), tmp_path, SECONDS, SEED)
    except netfuzz.FuzzFailure as e:
        log = (tmp_path / "broker.log")
        tail = "\n".join(log.read_text(errors="replace").splitlines()[-40:]) if log.exists() else ""
        pytest.fail("netfuzz seed %d: %s\nbroker log tail:\n%s" % (SEED, e, tail))
    assert not fuzzer.findings, "netfuzz seed %d: %s" % (SEED, fuzzer.findings)
    # The fuzzer reached every api it was given seeds for, and the record
    # checks saw batches of every codec.
    assert len(fuzzer.frames) == len({api for api, _ in fuzzer.pairs})
    codecs = {codec for codec, outcome in fuzzer.produce if outcome == "accepted"}
    assert codecs == set(netfuzz.CODECS.values()), codecs
