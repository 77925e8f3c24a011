"""The same confluent-kafka scenarios under two client flavours, each in its
own interpreter so neither shadows the other:

  debian: /usr/bin/python3 -I  -> python3-confluent-kafka 1.7 + librdkafka 2.0.2
  pypi:   the venv's python    -> confluent-kafka from PyPI + its bundled librdkafka

The Debian flavour is skipped only if Debian's module is missing and CI is
unset; under CI a missing client fails."""
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from conftest import DEBIAN_PYTHON, NODE_ID, debian_confluent_available, require_or_skip, unique_topic

SCRIPT = Path(__file__).resolve().parent / "flavor_client.py"

FLAVORS = {
    "debian": [DEBIAN_PYTHON, "-I"],
    "pypi": [sys.executable],
}


@pytest.fixture(params=sorted(FLAVORS))
def flavor(request):
    if request.param == "debian":
        require_or_skip(debian_confluent_available(), "Debian python3-confluent-kafka (/usr/bin/python3)")
    return request.param


def run_scenario(flavor, scenario, bootstrap, codec="none"):
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "PYTHONHOME", "VIRTUAL_ENV")}
    cmd = FLAVORS[flavor] + [str(SCRIPT), scenario, bootstrap, unique_topic(scenario), codec, str(NODE_ID)]
    r = subprocess.run(cmd, capture_output=True, timeout=150, env=env)
    out = r.stdout.decode(errors="replace")
    assert r.returncode == 0, "%s %s failed (rc %d)\nstdout: %s\nstderr: %s" % (
        flavor, scenario, r.returncode, out[-3000:], r.stderr.decode(errors="replace")[-3000:])
    result = json.loads(out.strip().splitlines()[-1])
    assert result["ok"]
    if flavor == "debian":
        assert result["librdkafka"].startswith("2.0."), result
    return result


@pytest.mark.parametrize("codec", ["none", "gzip", "snappy", "lz4", "zstd"])
def test_flavor_roundtrip(broker, flavor, codec):
    res = run_scenario(flavor, "roundtrip", broker.bootstrap, codec)
    assert res["messages"] == 300


def test_flavor_admin_create_delete(broker, flavor):
    run_scenario(flavor, "admin", broker.bootstrap)


def test_flavor_idempotent_producer(broker, flavor):
    res = run_scenario(flavor, "idempotent", broker.bootstrap)
    assert res["messages"] == 2000
