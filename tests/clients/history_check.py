"""The checker of the replication fault harness: reads the histories that
fault_worker.py processes recorded and reports every anomaly.

Sources of evidence, each a file of lines (see fault_worker.py):
- producers: `A value partition offset t_send t_ack` for each
  acknowledged write, `E ...` for writes whose outcome is unknown;
- live consumers, which read from offset 0 while the faults happen and,
  after healing, until the end offsets the harness gives them;
- final readers, which read from offset 0 after healing up to the high
  watermark they learn first.

Every value is produced once (unique per producer incarnation), so each
value belongs at one (partition, offset) and each (partition, offset)
holds one value. The categories, each of which must be empty:

lost        an acknowledged value a complete final read does not hold
duplicates  one value at two positions (in one read, or across the
            producer's acknowledgement and any read)
divergent   one position holding two different values across the
            acknowledgements and all reads
nonmonotonic  a consumer that read an offset at or below one it had
            already read in the same partition (one process assigns each
            partition once: one session per partition)
unseen      an acknowledged value a live consumer never delivered,
            although it read past that value's offset after healing
gaps        a consumer that skipped offsets within a session (offsets of
            these non-transactional, non-compacted logs are consecutive)
phantom     a value a consumer read that a complete final read does not
            hold: it read a write that was not committed (and later cut)
incomplete  a reader that did not get to its end offsets (nothing about
            lost or unseen values can be said of it then)
"""
import collections
import json

CATEGORIES = ("lost", "duplicates", "divergent", "nonmonotonic", "unseen", "gaps", "phantom",
              "incomplete")


class Producer:
    def __init__(self, name):
        self.name = name
        self.acked = {}        # value -> (partition, offset, t_send, t_ack)
        self.failed = {}       # value -> error
        self.fatal = []        # (t, error)
        self.done = None       # (sent, undelivered)


class Read:
    def __init__(self, name, final):
        self.name, self.final = name, final
        self.records = []      # (partition, offset, value, t) in the order read
        self.errors = []       # (t, error)
        self.watermarks = {}   # partition -> high watermark (final reads)
        self.done = None       # (complete?, {partition: next offset})


def parse_producer(name, lines):
    p = Producer(name)
    for line in lines:
        f = line.split()
        if not f:
            continue
        if f[0] == "A" and len(f) == 6:
            p.acked[f[1]] = (int(f[2]), int(f[3]), float(f[4]), float(f[5]))
        elif f[0] == "E" and len(f) >= 4:
            p.failed[f[1]] = " ".join(f[4:])
        elif f[0] == "F":
            p.fatal.append((float(f[1]), " ".join(f[2:])))
        elif f[0] == "D" and len(f) == 3:
            p.done = (int(f[1]), int(f[2]))
    return p


def parse_read(name, lines, final):
    r = Read(name, final)
    for line in lines:
        f = line.split(" ", 5)
        if not f or not f[0]:
            continue
        if f[0] == "R" and len(f) == 5:
            r.records.append((int(f[1]), int(f[2]), f[3], float(f[4])))
        elif f[0] == "X":
            r.errors.append((float(f[1]), " ".join(f[2:])))
        elif f[0] == "W" and len(f) == 3:
            r.watermarks[int(f[1])] = int(f[2])
        elif f[0] == "D":
            f = line.split(" ", 2)
            r.done = (f[1] == "complete", {int(k): v for k, v in json.loads(f[2]).items()})
    return r


def read_lines(path):
    try:
        with open(path) as f:
            return f.read().splitlines()
    except FileNotFoundError:
        return []


class Report:
    def __init__(self):
        self.found = {c: [] for c in CATEGORIES}
        self.info = []

    def add(self, category, item):
        self.found[category].append(item)

    def counts(self):
        return {c: len(v) for c, v in self.found.items()}

    def ok(self):
        return not any(self.found.values())

    def text(self, limit=8):
        lines = ["checker: " + ", ".join("%s=%d" % kv for kv in self.counts().items())]
        for c in CATEGORIES:
            for item in self.found[c][:limit]:
                lines.append("  %s: %s" % (c, item))
            if len(self.found[c]) > limit:
                lines.append("  %s: ... %d more" % (c, len(self.found[c]) - limit))
        lines.extend("  info: " + i for i in self.info)
        return "\n".join(lines)


def check(producers, reads):
    """producers: [Producer]; reads: [Read] (live consumers and final
    readers). Returns a Report."""
    rep = Report()
    acked = {}
    for p in producers:
        for v, a in p.acked.items():
            acked[v] = (p.name,) + a
        if p.fatal:
            rep.info.append("%s: %d fatal producer errors, first %s" % (p.name, len(p.fatal),
                                                                        p.fatal[0][1]))
        if p.failed:
            first = next(iter(p.failed.items()))
            rep.info.append("%s: %d writes failed (outcome unknown), e.g. %s %s"
                            % (p.name, len(p.failed), first[0], first[1]))
        if p.done is None:
            rep.info.append("%s: never finished" % p.name)
        elif p.done[1]:
            rep.info.append("%s: %d writes undelivered at its end" % (p.name, p.done[1]))

    # Every place each value was seen, and every value each place held.
    where = collections.defaultdict(set)       # value -> {(partition, offset)}
    held = collections.defaultdict(set)        # (partition, offset) -> {value}
    sources = collections.defaultdict(set)     # (value, partition, offset) -> {source}
    for v, (name, part, off, _, _) in acked.items():
        where[v].add((part, off))
        held[(part, off)].add(v)
        sources[(v, part, off)].add(name + " ack")
    for r in reads:
        for part, off, v, _ in r.records:
            where[v].add((part, off))
            held[(part, off)].add(v)
            sources[(v, part, off)].add(r.name)

    for v in sorted(where):
        if len(where[v]) > 1:
            rep.add("duplicates", "%s at %s" % (v, "; ".join(
                "%d/%d (%s)" % (p, o, ", ".join(sorted(sources[(v, p, o)])))
                for p, o in sorted(where[v]))))
    for pos in sorted(held):
        if len(held[pos]) > 1:
            rep.add("divergent", "%d/%d holds %s" % (pos[0], pos[1], "; ".join(
                "%s (%s)" % (v, ", ".join(sorted(sources[(v,) + pos])))
                for v in sorted(held[pos]))))

    for r in reads:
        last = {}
        for part, off, v, t in r.records:
            prev = last.get(part)
            if prev is not None and off <= prev:
                rep.add("nonmonotonic", "%s read %d/%d (%s) after %d/%d" % (
                    r.name, part, off, v, part, prev))
            elif prev is not None and off != prev + 1:
                rep.add("gaps", "%s read %d/%d after %d/%d" % (r.name, part, off, part, prev))
            elif prev is None and off != 0:
                rep.add("gaps", "%s began partition %d at offset %d" % (r.name, part, off))
            last[part] = off if prev is None else max(prev, off)

        complete = r.done is not None and r.done[0]
        if not complete:
            rep.add("incomplete", "%s did not reach its end offsets (%s; watermarks %s)%s" % (
                r.name, "no end line" if r.done is None else r.done[1], r.watermarks or "-",
                "; last error %s" % r.errors[-1][1] if r.errors else ""))
            continue
        seen = {v for _, _, v, _ in r.records}
        positions = r.done[1]
        for v, (name, part, off, _, t_ack) in sorted(acked.items()):
            if v in seen:
                continue
            if r.final:
                rep.add("lost", "%s acked by %s at %d/%d, not in %s (which read %d/%d up to %s)"
                        % (v, name, part, off, r.name, part, positions.get(part, 0),
                           r.watermarks.get(part, "?")))
            elif off < positions.get(part, 0):
                rep.add("unseen", "%s acked by %s at %d/%d, never delivered to %s (read up to %d)"
                        % (v, name, part, off, r.name, positions.get(part, 0)))
        if r.errors:
            rep.info.append("%s: %d client errors, e.g. %s" % (r.name, len(r.errors),
                                                               r.errors[0][1][:160]))

    finals = [r for r in reads if r.final and r.done is not None and r.done[0]]
    for f in finals:
        held_f = {v for _, _, v, _ in f.records}
        for r in reads:
            if r is f:
                continue
            for part, off, v, _ in r.records:
                if v not in held_f:
                    rep.add("phantom", "%s read %s at %d/%d; %s does not hold it" % (
                        r.name, v, part, off, f.name))
    return rep


def resume_time(producers, t_fault, partitions, quiet=0.5, window=60.0):
    """Seconds from `t_fault` (a kill) until produce resumed in each of
    `partitions`; the largest of them, or None if one never resumed.

    Produce resumed at the first acknowledgement after `t_fault` that ends
    a silence of at least `quiet` seconds in that partition (within
    `window` seconds of the fault), or, if there was no such silence, at
    the first acknowledgement after `t_fault`. (The acknowledgements a
    killed leader sent just before it died reach the client just after
    the kill: they do not mean that produce resumed.)"""
    worst = 0.0
    for part in partitions:
        times = sorted(a[3] for p in producers for a in p.acked.values() if a[0] == part)
        prev = max((t for t in times if t <= t_fault), default=None)
        first = resumed = None
        for t in times:
            if t <= t_fault:
                continue
            if t > t_fault + window:
                break
            if first is None:
                first = t
            if prev is not None and t - prev >= quiet:
                resumed = t
                break
            prev = t
        resumed = resumed or first
        if resumed is None:
            return None
        worst = max(worst, resumed - t_fault)
    return worst
