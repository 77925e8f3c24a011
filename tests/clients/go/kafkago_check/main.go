// kafkago_check drives a broker with kafka-go 0.2.1 (Debian's
// golang-github-segmentio-kafka-go-dev), as a Go application pinned years
// back would. kafka-go 0.2.1 speaks Produce v2 and Fetch v2 with message
// format v1 (magic 1), which the broker converts to and from record batches
// (issue 21). It writes keyed messages in every codec kafka-go has (none,
// gzip, snappy, lz4), some with their own timestamps, reads them all back
// from the partition in order, then reads and commits them as a consumer
// group member, and a second member of the group resumes at the commit.
// It prints one "ok ..." line per step and exits 1 with the error on the
// first failure.
//
//	kafkago_check BOOTSTRAP TOPIC GROUP
package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/gzip"
	"github.com/segmentio/kafka-go/lz4"
	"github.com/segmentio/kafka-go/snappy"
)

// Messages written per codec.
const perCodec = 25

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

// codecs: kafka-go's, by name, nil for none.
func codecs() []struct {
	name  string
	codec kafka.CompressionCodec
} {
	return []struct {
		name  string
		codec kafka.CompressionCodec
	}{
		{"none", nil},
		{"gzip", gzip.NewCompressionCodec()},
		{"snappy", snappy.NewCompressionCodec()},
		{"lz4", lz4.NewCompressionCodec()},
	}
}

// created is the CreateTime given to message i of a codec when it carries
// its own (every other message; the writer stamps the rest with now).
func created(i int) time.Time {
	return time.Unix(1600000000, 0).Add(time.Duration(i) * time.Millisecond)
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: kafkago_check BOOTSTRAP TOPIC GROUP")
	}
	bootstrap, topic, group := os.Args[1], os.Args[2], os.Args[3]
	ctx, cancel := context.WithTimeout(context.Background(), 120*time.Second)
	defer cancel()
	start := time.Now()

	var want []kafka.Message
	for _, c := range codecs() {
		w := kafka.NewWriter(kafka.WriterConfig{
			Brokers:          []string{bootstrap},
			Topic:            topic,
			CompressionCodec: c.codec,
			BatchSize:        perCodec,
			BatchTimeout:     50 * time.Millisecond,
			RequiredAcks:     -1,
		})
		var msgs []kafka.Message
		for i := 0; i < perCodec; i++ {
			m := kafka.Message{
				Key:   []byte(fmt.Sprintf("%s-k%d", c.name, i)),
				Value: bytes.Repeat([]byte(fmt.Sprintf("%s-v%d;", c.name, i)), 1+i%4),
			}
			if i%2 == 0 {
				m.Time = created(i)
			}
			msgs = append(msgs, m)
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			fail("write %s: %v", c.name, err)
		}
		if err := w.Close(); err != nil {
			fail("close writer %s: %v", c.name, err)
		}
		want = append(want, msgs...)
		fmt.Printf("ok wrote %d messages with codec %s\n", perCodec, c.name)
	}

	// The partition read back, from its first offset.
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, Partition: 0,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
	if err := r.SetOffset(0); err != nil {
		fail("set offset: %v", err)
	}
	for i, w := range want {
		m, err := r.ReadMessage(ctx)
		if err != nil {
			fail("read message %d: %v", i, err)
		}
		if m.Offset != int64(i) || !bytes.Equal(m.Key, w.Key) || !bytes.Equal(m.Value, w.Value) {
			fail("message %d: offset %d key %q value %q, want key %q value %q", i, m.Offset, m.Key, m.Value, w.Key, w.Value)
		}
		if !w.Time.IsZero() && !m.Time.Equal(w.Time) {
			fail("message %d: time %v, want its CreateTime %v", i, m.Time, w.Time)
		}
		if w.Time.IsZero() && (m.Time.Before(start.Add(-time.Minute)) || m.Time.After(time.Now().Add(time.Minute))) {
			fail("message %d: time %v, want about now", i, m.Time)
		}
	}
	r.Close()
	fmt.Printf("ok read %d messages back in order with keys, values and times\n", len(want))

	// A consumer group member reads everything and commits it.
	g := kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, GroupID: group,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
	var last kafka.Message
	for i := range want {
		m, err := g.FetchMessage(ctx)
		if err != nil {
			fail("group fetch %d: %v", i, err)
		}
		if m.Offset != int64(i) {
			fail("group fetch %d: offset %d", i, m.Offset)
		}
		last = m
	}
	if err := g.CommitMessages(ctx, last); err != nil {
		fail("commit: %v", err)
	}
	g.Close()
	fmt.Printf("ok group read %d messages and committed\n", len(want))

	// More messages, then a new member of the group resumes at the commit.
	w := kafka.NewWriter(kafka.WriterConfig{Brokers: []string{bootstrap}, Topic: topic, RequiredAcks: -1,
		BatchTimeout: 10 * time.Millisecond})
	if err := w.WriteMessages(ctx, kafka.Message{Value: []byte("after-commit")}); err != nil {
		fail("write after commit: %v", err)
	}
	w.Close()
	g = kafka.NewReader(kafka.ReaderConfig{Brokers: []string{bootstrap}, Topic: topic, GroupID: group,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 200 * time.Millisecond})
	m, err := g.FetchMessage(ctx)
	if err != nil {
		fail("fetch after commit: %v", err)
	}
	if m.Offset != int64(len(want)) || string(m.Value) != "after-commit" {
		fail("resumed at offset %d (%q), want %d", m.Offset, m.Value, len(want))
	}
	g.Close()
	fmt.Printf("ok a new member resumed at the committed offset %d\n", m.Offset)
}
