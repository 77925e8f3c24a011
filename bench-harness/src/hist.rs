//! Latency histogram helpers: per-worker recording, merging, the `.hgrm`
//! percentile-distribution text format (writer and parser) and interval logs.
//!
//! All latencies handled here are in microseconds. Microseconds keep three
//! significant digits meaningful from a few microseconds (loopback round trips)
//! up to an hour, which is the full range a broker benchmark can produce.

use std::fs::File;
use std::io::{BufWriter, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime};

use hdrhistogram::serialization::interval_log::{IntervalLogWriterBuilder, Tag};
use hdrhistogram::serialization::V2DeflateSerializer;
use hdrhistogram::Histogram;
use serde::{Deserialize, Serialize};

use crate::error::{Error, IoContext, Result};

/// Significant value digits kept by every latency histogram.
pub const LATENCY_SIGNIFICANT_DIGITS: u8 = 3;

/// Largest latency a histogram can hold (one hour); larger values are clamped.
pub const MAX_TRACKABLE_LATENCY_US: u64 = 3_600_000_000;

/// Percentile rows per halving of the distance to 100%, as HdrHistogram's
/// `outputPercentileDistribution` uses by default.
pub const DEFAULT_TICKS_PER_HALF_DISTANCE: u32 = 5;

/// Quantiles that always get their own row in an `.hgrm` file, so that the
/// headline percentiles read back from the file exactly.
const HEADLINE_QUANTILES: [f64; 7] = [0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999, 0.999999];

/// Creates an empty latency histogram with the harness-wide bounds.
pub fn new_latency_histogram() -> Histogram<u64> {
    // The bounds are compile-time constants that satisfy hdrhistogram's
    // preconditions (low >= 1, high >= 2 * low, sigfig <= 5), so creation
    // cannot fail at run time.
    Histogram::new_with_bounds(1, MAX_TRACKABLE_LATENCY_US, LATENCY_SIGNIFICANT_DIGITS)
        .expect("constant histogram bounds are valid")
}

/// Merges histograms (e.g. one per worker) into a new histogram.
///
/// Histograms created with [`new_latency_histogram`] always merge; a histogram
/// with values beyond the target's range yields an error instead of a panic.
pub fn merge_histograms<'a, I>(histograms: I) -> Result<Histogram<u64>>
where
    I: IntoIterator<Item = &'a Histogram<u64>>,
{
    let mut merged = new_latency_histogram();
    for h in histograms {
        merged
            .add(h)
            .map_err(|e| Error::Invalid(format!("merging histograms: {e:?}")))?;
    }
    Ok(merged)
}

/// Per-worker latency recorder: a whole-run histogram plus an interval
/// histogram that the owner drains periodically into an interval log.
///
/// Each worker owns one recorder, so recording never contends on a lock; the
/// run's total is produced afterwards with [`merge_histograms`].
#[derive(Debug, Clone)]
pub struct LatencyRecorder {
    total: Histogram<u64>,
    interval: Histogram<u64>,
    interval_started: Instant,
}

impl Default for LatencyRecorder {
    fn default() -> Self {
        Self::new()
    }
}

impl LatencyRecorder {
    /// Creates an empty recorder whose first interval starts now.
    pub fn new() -> Self {
        LatencyRecorder {
            total: new_latency_histogram(),
            interval: new_latency_histogram(),
            interval_started: Instant::now(),
        }
    }

    /// Records one latency. Values outside the trackable range are clamped
    /// rather than dropped, so that outliers still show up as the maximum.
    pub fn record_us(&mut self, latency_us: u64) {
        let clamped_us = latency_us.clamp(1, MAX_TRACKABLE_LATENCY_US);
        self.total.saturating_record(clamped_us);
        self.interval.saturating_record(clamped_us);
    }

    /// Records `count` samples of one latency.
    pub fn record_n_us(&mut self, latency_us: u64, count: u64) {
        let clamped_us = latency_us.clamp(1, MAX_TRACKABLE_LATENCY_US);
        self.total.saturating_record_n(clamped_us, count);
        self.interval.saturating_record_n(clamped_us, count);
    }

    /// Records the time elapsed since `started`.
    pub fn record_since(&mut self, started: Instant) {
        let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
        self.record_us(elapsed_us);
    }

    /// The histogram of everything recorded so far.
    pub fn total(&self) -> &Histogram<u64> {
        &self.total
    }

    /// Returns the current interval's histogram and how long the interval
    /// lasted, and starts a new interval.
    pub fn take_interval(&mut self) -> (Histogram<u64>, Duration) {
        let now = Instant::now();
        let length = now.duration_since(self.interval_started);
        self.interval_started = now;
        let taken = std::mem::replace(&mut self.interval, new_latency_histogram());
        (taken, length)
    }

    /// Consumes the recorder and returns its whole-run histogram.
    pub fn into_total(self) -> Histogram<u64> {
        self.total
    }
}

/// One interval of an interval log, summarised.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct IntervalPoint {
    /// Start of the interval, seconds after the log's base time.
    pub start_s: f64,
    /// Length of the interval in seconds.
    pub length_s: f64,
    pub count: u64,
    pub p50_us: f64,
    pub p99_us: f64,
    pub max_us: f64,
}

/// Reads an interval log (`.hlog`) written by [`IntervalLogFile`] (or any
/// HdrHistogram V2 log) and summarises each interval.
pub fn read_interval_log(path: &Path) -> Result<Vec<IntervalPoint>> {
    use base64::Engine as _;
    use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
    use hdrhistogram::serialization::Deserializer;
    let bytes = std::fs::read(path).at("reading", path)?;
    let mut deserializer = Deserializer::new();
    let mut out = Vec::new();
    for entry in IntervalLogIterator::new(&bytes) {
        let entry = entry.map_err(|e| Error::Invalid(format!("{}: {e:?}", path.display())))?;
        let LogEntry::Interval(interval) = entry else {
            continue;
        };
        let raw = base64::engine::general_purpose::STANDARD
            .decode(interval.encoded_histogram())
            .map_err(|e| Error::Invalid(format!("{}: bad base64: {e}", path.display())))?;
        let h: Histogram<u64> = deserializer
            .deserialize(&mut std::io::Cursor::new(raw))
            .map_err(|e| Error::Invalid(format!("{}: bad histogram: {e:?}", path.display())))?;
        out.push(IntervalPoint {
            start_s: interval.start_timestamp().as_secs_f64(),
            length_s: interval.duration().as_secs_f64(),
            count: h.len(),
            p50_us: h.value_at_quantile(0.5) as f64,
            p99_us: h.value_at_quantile(0.99) as f64,
            max_us: h.max() as f64,
        });
    }
    Ok(out)
}

/// Merges the interval histograms of many workers into one interval log:
/// each worker drains its [`LatencyRecorder`] interval into the slot of the
/// interval it is in, and the run writes the merged slots at the end. The
/// lock is taken once per worker per interval, never per sample.
#[derive(Debug)]
pub struct IntervalCollector {
    origin: Instant,
    origin_wall: SystemTime,
    interval: Duration,
    slots: std::sync::Mutex<std::collections::BTreeMap<u64, Histogram<u64>>>,
}

impl IntervalCollector {
    /// Intervals of length `interval` counted from `origin` (which is
    /// `origin_wall` on the wall clock).
    pub fn new(origin: Instant, origin_wall: SystemTime, interval: Duration) -> Self {
        IntervalCollector {
            origin,
            origin_wall,
            interval: interval.max(Duration::from_millis(1)),
            slots: Default::default(),
        }
    }

    /// The interval `at` falls in (0 for anything before the origin).
    pub fn index(&self, at: Instant) -> u64 {
        (at.saturating_duration_since(self.origin).as_nanos() / self.interval.as_nanos()) as u64
    }

    /// Moves `rec`'s current interval into slot `*slot` when `now` is past
    /// it, and advances `*slot`. `force` drains whatever is there (at the end).
    pub fn drain(&self, rec: &mut LatencyRecorder, slot: &mut u64, now: Instant, force: bool) {
        let current = self.index(now);
        if current <= *slot && !force {
            return;
        }
        let (h, _) = rec.take_interval();
        if !h.is_empty() {
            let mut slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
            let merged = slots.entry(*slot).or_insert_with(new_latency_histogram);
            // Histograms from `new_latency_histogram` share bounds, so this
            // cannot fail; a failure would only lose one interval's samples.
            let _ = merged.add(&h);
        }
        *slot = current;
    }

    /// Writes every interval, in order, to `log`.
    pub fn write(&self, log: &mut IntervalLogFile, tag: Option<&str>) -> Result<()> {
        let slots = self.slots.lock().unwrap_or_else(|e| e.into_inner());
        for (idx, h) in slots.iter() {
            let start = self.origin_wall + self.interval * (*idx as u32);
            log.write_interval(h, start, self.interval, tag)?;
        }
        Ok(())
    }
}

/// Headline statistics of one latency histogram, in microseconds.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct HistogramSummary {
    /// Number of recorded values.
    pub count: u64,
    /// Median.
    pub p50_us: f64,
    /// 90th percentile.
    pub p90_us: f64,
    /// 99th percentile.
    pub p99_us: f64,
    /// 99.9th percentile.
    pub p999_us: f64,
    /// 99.99th percentile.
    pub p9999_us: f64,
    /// Largest recorded value.
    pub max_us: f64,
    /// Arithmetic mean (reported for completeness; tails matter more).
    pub mean_us: f64,
}

impl HistogramSummary {
    /// Summarises an in-memory histogram.
    pub fn from_histogram(h: &Histogram<u64>) -> Self {
        if h.is_empty() {
            return HistogramSummary::default();
        }
        let at = |q: f64| h.value_at_quantile(q) as f64;
        HistogramSummary {
            count: h.len(),
            p50_us: at(0.5),
            p90_us: at(0.9),
            p99_us: at(0.99),
            p999_us: at(0.999),
            p9999_us: at(0.9999),
            max_us: h.max() as f64,
            mean_us: h.mean(),
        }
    }

    /// Summarises a parsed `.hgrm` file.
    pub fn from_hgrm(h: &Hgrm) -> Self {
        let at = |q: f64| h.value_at_quantile(q).unwrap_or(0.0);
        HistogramSummary {
            count: h.total_count,
            p50_us: at(0.5),
            p90_us: at(0.9),
            p99_us: at(0.99),
            p999_us: at(0.999),
            p9999_us: at(0.9999),
            max_us: h.max_value,
            mean_us: h.mean,
        }
    }
}

/// One data row of an `.hgrm` file.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct HgrmRow {
    /// Value at this percentile, in the file's unit (microseconds here).
    pub value: f64,
    /// Quantile in [0, 1] (the column is called "Percentile" but holds a fraction).
    pub quantile: f64,
    /// Number of recorded values at or below `value`.
    pub total_count: u64,
}

/// A parsed percentile-distribution (`.hgrm`) file.
#[derive(Debug, Clone, PartialEq)]
pub struct Hgrm {
    /// Data rows in file order (ascending quantile).
    pub rows: Vec<HgrmRow>,
    /// Mean from the `#[Mean = ...]` footer, 0 if absent.
    pub mean: f64,
    /// Standard deviation from the footer, 0 if absent.
    pub std_deviation: f64,
    /// Maximum from the `#[Max = ...]` footer, else the last row's value.
    pub max_value: f64,
    /// Total count from the footer, else the last row's total count.
    pub total_count: u64,
}

impl Hgrm {
    /// The value at quantile `q` (0..=1): the first row at or above `q`.
    ///
    /// Files written by [`format_hgrm`] contain rows for the headline
    /// quantiles, so those read back exactly; for other quantiles this is the
    /// next-higher row, which over-reports slightly, never under-reports.
    pub fn value_at_quantile(&self, q: f64) -> Option<f64> {
        // A small tolerance absorbs the 12-decimal rounding in the file.
        self.rows
            .iter()
            .find(|r| r.quantile >= q - 1e-12)
            .or(self.rows.last())
            .map(|r| r.value)
    }
}

/// Renders `h` in the text format of HdrHistogram's
/// `outputPercentileDistribution` (with `outputValueUnitScalingRatio` 1), which
/// HdrHistogram's online plotter accepts.
///
/// Rows follow HdrHistogram's percentile iteration (`ticks_per_half_distance`
/// rows per halving of the remaining distance to 100%), with extra rows for
/// the headline quantiles so that those survive a round trip exactly.
pub fn format_hgrm(h: &Histogram<u64>, ticks_per_half_distance: u32) -> String {
    use std::fmt::Write as _;
    let ticks = u64::from(ticks_per_half_distance.clamp(1, 1000));
    let sig = usize::from(h.sigfig());
    let mut out = String::new();
    // Writing into a String cannot fail, so the fmt results are ignored.
    let _ = write!(
        out,
        "{:>12} {:>14} {:>10} {:>14}\n\n",
        "Value", "Percentile", "TotalCount", "1/(1-Percentile)"
    );
    let total = h.len();
    if total > 0 {
        for q in percentile_ticks(h, ticks) {
            let value = h.value_at_quantile(q);
            let count_to_value = h.count_between(0, value);
            if q < 1.0 {
                let _ = writeln!(
                    out,
                    "{:>12.sig$} {:>2.12} {:>10} {:>14.2}",
                    value as f64,
                    q,
                    count_to_value,
                    1.0 / (1.0 - q)
                );
            } else {
                let _ = writeln!(out, "{:>12.sig$} {:>2.12} {:>10}", h.max() as f64, q, total);
            }
        }
    }
    let _ = writeln!(
        out,
        "#[Mean    = {:>12.sig$}, StdDeviation   = {:>12.sig$}]",
        h.mean(),
        h.stdev()
    );
    let _ = writeln!(
        out,
        "#[Max     = {:>12.sig$}, Total count    = {:>12}]",
        h.max() as f64,
        total
    );
    let _ = writeln!(
        out,
        "#[Buckets = {:>12}, SubBuckets     = {:>12}]",
        h.buckets(),
        h.distinct_values()
    );
    out
}

/// The quantiles at which [`format_hgrm`] writes rows: HdrHistogram's
/// percentile ticks up to the first one that reaches the maximum, the
/// headline quantiles below that point, and a final 1.0.
fn percentile_ticks(h: &Histogram<u64>, ticks_per_half_distance: u64) -> Vec<f64> {
    let max = h.max();
    let mut qs = Vec::new();
    let mut q = 0.0_f64;
    loop {
        qs.push(q);
        if h.value_at_quantile(q) >= h.highest_equivalent(max) || q >= 1.0 {
            break;
        }
        // Same step rule as HdrHistogram's PercentileIterator: the step halves
        // each time the remaining distance to 100% halves.
        let halvings = (1.0 / (1.0 - q)).log2().floor().clamp(0.0, 60.0) as u32;
        let step = 1.0 / (ticks_per_half_distance as f64 * 2f64.powi(halvings as i32 + 1));
        let next = q + step;
        if next <= q || next >= 1.0 {
            break;
        }
        q = next;
    }
    let reached = qs.last().copied().unwrap_or(0.0);
    qs.extend(
        HEADLINE_QUANTILES
            .iter()
            .copied()
            .filter(|hq| *hq < reached),
    );
    qs.sort_by(f64::total_cmp);
    qs.dedup_by(|a, b| (*a - *b).abs() < 1e-12);
    qs.push(1.0);
    qs
}

/// Writes `h` as an `.hgrm` file.
pub fn write_hgrm(h: &Histogram<u64>, path: &Path) -> Result<()> {
    std::fs::write(path, format_hgrm(h, DEFAULT_TICKS_PER_HALF_DISTANCE)).at("writing", path)
}

/// Parses `.hgrm` text. `path` is only used in error messages.
pub fn parse_hgrm(text: &str, path: &Path) -> Result<Hgrm> {
    let parse_err = |line_no: usize, message: String| Error::Parse {
        path: path.to_path_buf(),
        message: format!("line {}: {message}", line_no + 1),
    };
    let mut rows = Vec::new();
    let mut mean = 0.0;
    let mut std_deviation = 0.0;
    let mut footer_max = None;
    let mut footer_count = None;
    for (line_no, raw) in text.lines().enumerate() {
        let line = raw.trim();
        if line.is_empty() || line.starts_with("Value") {
            continue;
        }
        if let Some(footer) = line.strip_prefix("#[") {
            let footer = footer.trim_end_matches(']');
            for pair in footer.split(',') {
                let Some((key, value)) = pair.split_once('=') else {
                    continue;
                };
                let key = key.trim();
                let value = value.trim();
                let as_f64 = || {
                    value
                        .parse::<f64>()
                        .map_err(|e| parse_err(line_no, format!("{key} = {value:?}: {e}")))
                };
                match key {
                    "Mean" => mean = as_f64()?,
                    "StdDeviation" => std_deviation = as_f64()?,
                    "Max" => footer_max = Some(as_f64()?),
                    "Total count" => footer_count = Some(as_f64()? as u64),
                    _ => {}
                }
            }
            continue;
        }
        if line.starts_with('#') {
            continue;
        }
        let fields: Vec<&str> = line.split_whitespace().collect();
        if fields.len() < 3 {
            return Err(parse_err(
                line_no,
                format!("expected Value Percentile TotalCount, got {line:?}"),
            ));
        }
        let num = |i: usize| {
            fields[i]
                .parse::<f64>()
                .map_err(|e| parse_err(line_no, format!("field {:?}: {e}", fields[i])))
        };
        let row = HgrmRow {
            value: num(0)?,
            quantile: num(1)?,
            total_count: num(2)? as u64,
        };
        if !(0.0..=1.0).contains(&row.quantile) {
            return Err(parse_err(
                line_no,
                format!("percentile {} outside [0, 1]", row.quantile),
            ));
        }
        if let Some(prev) = rows.last() {
            let prev: &HgrmRow = prev;
            if row.quantile < prev.quantile {
                return Err(parse_err(line_no, "percentiles are not ascending".into()));
            }
        }
        rows.push(row);
    }
    let max_value = footer_max
        .or_else(|| rows.last().map(|r| r.value))
        .unwrap_or(0.0);
    let total_count = footer_count
        .or_else(|| rows.last().map(|r| r.total_count))
        .unwrap_or(0);
    Ok(Hgrm {
        rows,
        mean,
        std_deviation,
        max_value,
        total_count,
    })
}

/// Reads and parses an `.hgrm` file.
pub fn read_hgrm(path: &Path) -> Result<Hgrm> {
    let text = std::fs::read_to_string(path).at("reading", path)?;
    parse_hgrm(&text, path)
}

/// An HdrHistogram interval log (`.hlog`) being written, one compressed
/// histogram per interval, readable by HdrHistogram's `HistogramLogReader`
/// and `HistogramLogAnalyzer`.
pub struct IntervalLogFile {
    path: PathBuf,
    out: BufWriter<File>,
    serializer: V2DeflateSerializer,
    base_time: SystemTime,
}

impl IntervalLogFile {
    /// Creates the log at `path` with StartTime and BaseTime set to
    /// `base_time`; interval timestamps are then seconds since `base_time`.
    pub fn create(path: &Path, base_time: SystemTime, comment: &str) -> Result<Self> {
        let file = File::create(path).at("creating", path)?;
        let mut out = BufWriter::new(file);
        let mut serializer = V2DeflateSerializer::new();
        let mut builder = IntervalLogWriterBuilder::new();
        builder
            .add_comment(comment)
            .add_comment("Values are latencies in microseconds.")
            .with_start_time(base_time)
            .with_base_time(base_time);
        builder
            .begin_log_with(&mut out, &mut serializer)
            .at("writing", path)?;
        // The Java writer emits this legend line; tools that parse the log
        // tolerate its absence, but including it keeps the files identical in shape.
        writeln!(
            out,
            "\"StartTimestamp\",\"Interval_Length\",\"Interval_Max\",\"Interval_Compressed_Histogram\""
        )
        .at("writing", path)?;
        Ok(IntervalLogFile {
            path: path.to_path_buf(),
            out,
            serializer,
            base_time,
        })
    }

    /// Appends one interval that started at `interval_start` and lasted
    /// `length`. `tag` (e.g. a worker or histogram name) must not contain
    /// commas, spaces or newlines; an invalid tag is omitted.
    pub fn write_interval(
        &mut self,
        h: &Histogram<u64>,
        interval_start: SystemTime,
        length: Duration,
        tag: Option<&str>,
    ) -> Result<()> {
        let offset = interval_start
            .duration_since(self.base_time)
            .unwrap_or(Duration::ZERO);
        // A builder with no headers configured writes nothing, so this only
        // borrows the file and serializer for one histogram line.
        let mut writer = IntervalLogWriterBuilder::new()
            .begin_log_with(&mut self.out, &mut self.serializer)
            .at("writing", &self.path)?;
        writer
            .write_histogram(h, offset, length, tag.and_then(Tag::new))
            .map_err(|e| Error::Invalid(format!("writing {}: {e}", self.path.display())))
    }

    /// Flushes buffered lines to disk and closes the log.
    pub fn finish(mut self) -> Result<()> {
        self.out.flush().at("flushing", &self.path)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample(values: impl IntoIterator<Item = u64>) -> Histogram<u64> {
        let mut h = new_latency_histogram();
        for v in values {
            h.saturating_record(v);
        }
        h
    }

    #[test]
    fn merge_adds_counts_and_keeps_extremes() {
        let mut workers = [LatencyRecorder::new(), LatencyRecorder::new()];
        for v in 1..=1000 {
            workers[0].record_us(v);
        }
        workers[1].record_us(50_000);
        let merged = merge_histograms(workers.iter().map(|w| w.total())).expect("merge");
        assert_eq!(merged.len(), 1001);
        assert_eq!(merged.min(), 1);
        assert!(merged.equivalent(merged.max(), 50_000));
        assert!(merged.equivalent(merged.value_at_quantile(0.5), 501));
    }

    #[test]
    fn recorder_intervals_reset_but_total_accumulates() {
        let mut r = LatencyRecorder::new();
        r.record_us(10);
        r.record_us(0); // clamped to 1 rather than rejected
        let (first, _) = r.take_interval();
        r.record_us(20);
        let (second, _) = r.take_interval();
        assert_eq!(first.len(), 2);
        assert_eq!(second.len(), 1);
        assert_eq!(r.total().len(), 3);
    }

    #[test]
    fn hgrm_round_trips_headline_percentiles() {
        // A long-tailed distribution, like real latencies.
        let h = sample(
            (1..=20_000u64).map(|i| 50 + (i * i) / 20_000 + if i % 997 == 0 { 40_000 } else { 0 }),
        );
        let text = format_hgrm(&h, DEFAULT_TICKS_PER_HALF_DISTANCE);
        let parsed = parse_hgrm(&text, Path::new("test.hgrm")).expect("parse");
        assert_eq!(parsed.total_count, h.len());
        assert_eq!(parsed.max_value, h.max() as f64);
        for q in [0.0, 0.5, 0.9, 0.99, 0.999, 0.9999, 0.99999] {
            assert_eq!(
                parsed.value_at_quantile(q),
                Some(h.value_at_quantile(q) as f64),
                "quantile {q}"
            );
        }
        assert_eq!(
            HistogramSummary::from_hgrm(&parsed).p99_us,
            HistogramSummary::from_histogram(&h).p99_us
        );
        // Every row is consistent with the histogram it came from.
        for row in &parsed.rows {
            assert!(row.total_count <= h.len());
        }
        let last = parsed.rows.last().expect("rows");
        assert_eq!(last.quantile, 1.0);
        assert_eq!(last.total_count, h.len());
    }

    #[test]
    fn hgrm_has_java_layout() {
        let h = sample([100, 200, 300]);
        let text = format_hgrm(&h, 5);
        let mut lines = text.lines();
        assert_eq!(
            lines.next(),
            Some("       Value     Percentile TotalCount 1/(1-Percentile)")
        );
        assert_eq!(lines.next(), Some(""));
        assert_eq!(
            lines.next(),
            Some("     100.000 0.000000000000          1           1.00")
        );
        assert!(text.contains("#[Max     =      300.000, Total count    =            3]"));
    }

    #[test]
    fn empty_histogram_formats_and_parses() {
        let h = new_latency_histogram();
        let parsed = parse_hgrm(&format_hgrm(&h, 5), Path::new("e.hgrm")).expect("parse");
        assert!(parsed.rows.is_empty());
        assert_eq!(parsed.total_count, 0);
        assert_eq!(parsed.value_at_quantile(0.99), None);
    }

    #[test]
    fn hgrm_parse_rejects_garbage_without_panicking() {
        for bad in [
            "abc def ghi\n",
            "1.0 2.0\n",
            "1.0 0.5 10\n2.0 0.4 11\n",
            "1 7 1\n",
        ] {
            assert!(parse_hgrm(bad, Path::new("bad.hgrm")).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn interval_log_is_readable_by_hdrhistogram() {
        use hdrhistogram::serialization::interval_log::{IntervalLogIterator, LogEntry};
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("run.hlog");
        let base = SystemTime::now();
        let mut log = IntervalLogFile::create(&path, base, "test run").expect("create");
        let h = sample([10, 20, 30]);
        log.write_interval(&h, base, Duration::from_secs(1), Some("produce"))
            .expect("write");
        log.write_interval(
            &h,
            base + Duration::from_secs(1),
            Duration::from_secs(1),
            None,
        )
        .expect("write");
        log.finish().expect("finish");
        let bytes = std::fs::read(&path).expect("read");
        let intervals = IntervalLogIterator::new(&bytes)
            .filter_map(|e| match e {
                Ok(LogEntry::Interval(i)) => Some(i),
                _ => None,
            })
            .count();
        assert_eq!(intervals, 2);
    }

    #[test]
    fn interval_logs_read_back_per_interval() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("x.hlog");
        let base = SystemTime::UNIX_EPOCH + Duration::from_secs(1_700_000_000);
        let mut log = IntervalLogFile::create(&path, base, "test").unwrap();
        log.write_interval(
            &sample([100, 200, 300]),
            base,
            Duration::from_secs(1),
            Some("x"),
        )
        .unwrap();
        log.write_interval(
            &sample([5000; 10]),
            base + Duration::from_secs(1),
            Duration::from_secs(1),
            Some("x"),
        )
        .unwrap();
        log.finish().unwrap();
        let points = read_interval_log(&path).unwrap();
        assert_eq!(points.len(), 2);
        assert_eq!((points[0].start_s, points[0].count), (0.0, 3));
        assert!((points[0].max_us - 300.0).abs() < 1.0, "{:?}", points[0]);
        assert_eq!((points[1].start_s, points[1].count), (1.0, 10));
        assert!((points[1].p50_us - 5000.0).abs() < 5.0, "{:?}", points[1]);
    }
}
