"""`corelog serve` with its embedded defaults, as the README starts it: the
data directory is the relative `data` under the working directory. A
relative data directory once left every new partition offline (glommio
cannot create directories under a relative path)."""
from conftest import Broker, consume_range, create_topic, produce_all


class DefaultDirBroker(Broker):
    """A broker started without --data-dir, in its work directory."""

    def command(self):
        cmd = super().command()
        i = cmd.index("--data-dir")
        return cmd[:i] + cmd[i + 2:]


def test_default_relative_data_dir_serves_produce_and_fetch(tmp_path, request):
    b = DefaultDirBroker(tmp_path / "default-dir")
    request.addfinalizer(b.kill9)
    b.start()
    topic = create_topic(b.bootstrap, partitions=2)
    produce_all(b.bootstrap, topic, [{"value": b"m%d" % i, "partition": i % 2} for i in range(10)])
    got = consume_range(b.bootstrap, topic, [0, 1], 10)
    assert sorted(m.value() for m in got) == sorted(b"m%d" % i for i in range(10))
    # The data went where the defaults say: ./data under the working directory.
    assert (tmp_path / "default-dir" / "data" / (topic + "-0")).is_dir()
