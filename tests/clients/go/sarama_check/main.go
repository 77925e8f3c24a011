// sarama_check drives a broker with Sarama 1.22 (Debian's
// golang-github-shopify-sarama-dev) configured for Kafka 2.1, as a deployed
// Go application pinned years back would: it produces keyed records in
// every codec (zstd refused, as Kafka refuses it in Produce v3), reads
// them back, commits offsets as a consumer group member
// (OffsetCommit v1 in Sarama 1.22), reads the commit back from a new
// consumer group session, and lists topics with the cluster admin
// (DescribeConfigs v0), having created the topic with it. It prints one "ok ..." line per step and exits 1
// with the error on the first failure.
//
//	sarama_check BOOTSTRAP TOPIC GROUP
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/Shopify/sarama"
)

const recordsPerCodec = 25

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func config() *sarama.Config {
	c := sarama.NewConfig()
	c.Version = sarama.V2_1_0_0
	c.ClientID = "sarama-check"
	c.Producer.Return.Successes = true
	c.Producer.RequiredAcks = sarama.WaitForAll
	c.Consumer.Offsets.Initial = sarama.OffsetOldest
	c.Consumer.Return.Errors = true
	c.Net.DialTimeout = 10 * time.Second
	c.Net.ReadTimeout = 10 * time.Second
	return c
}

type handler struct {
	want    int
	seen    int
	done    chan struct{}
	lastOff int64
}

func (h *handler) Setup(sarama.ConsumerGroupSession) error   { return nil }
func (h *handler) Cleanup(sarama.ConsumerGroupSession) error { return nil }
func (h *handler) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for m := range claim.Messages() {
		h.seen++
		h.lastOff = m.Offset
		s.MarkMessage(m, "")
		if h.seen == h.want {
			close(h.done)
			return nil
		}
	}
	return nil
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: sarama_check BOOTSTRAP TOPIC GROUP")
	}
	brokers, topic, group := []string{os.Args[1]}, os.Args[2], os.Args[3]

	admin, err := sarama.NewClusterAdmin(brokers, config())
	if err != nil {
		fail("cluster admin: %v", err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: 1, ReplicationFactor: 1}, false); err != nil {
		fail("create topic: %v", err)
	}
	fmt.Printf("ok created topic %s\n", topic)

	producer, err := sarama.NewSyncProducer(brokers, config())
	if err != nil {
		fail("producer: %v", err)
	}
	total := 0
	for _, codec := range []sarama.CompressionCodec{
		sarama.CompressionNone, sarama.CompressionGZIP, sarama.CompressionSnappy,
		sarama.CompressionLZ4, sarama.CompressionZSTD,
	} {
		// Sarama 1.22 sends zstd in Produce v3; Kafka 2.1 and later refuse
		// zstd below v7 (KIP-110) with UNSUPPORTED_COMPRESSION_TYPE, so
		// that clients which may not read zstd never see it.
		wantRefused := codec == sarama.CompressionZSTD
		c := config()
		c.Producer.Compression = codec
		p, err := sarama.NewSyncProducer(brokers, c)
		if err != nil {
			fail("producer %v: %v", codec, err)
		}
		msgs := make([]*sarama.ProducerMessage, 0, recordsPerCodec)
		for i := 0; i < recordsPerCodec; i++ {
			msgs = append(msgs, &sarama.ProducerMessage{
				Topic: topic, Partition: 0,
				Key:   sarama.StringEncoder(fmt.Sprintf("k%d", i%5)),
				Value: sarama.StringEncoder(fmt.Sprintf("codec-%d-value-%d", codec, i)),
			})
		}
		err = p.SendMessages(msgs)
		if errs, ok := err.(sarama.ProducerErrors); ok && len(errs) > 0 {
			err = errs[0].Err
		}
		p.Close()
		if wantRefused {
			if err != sarama.ErrUnsupportedCompressionType {
				fail("produce codec %d in Produce v3: got %v, want %v", codec, err, sarama.ErrUnsupportedCompressionType)
			}
			fmt.Printf("ok codec %d refused in Produce v3, as Kafka does\n", codec)
			continue
		}
		if err != nil {
			fail("produce codec %d: %v", codec, err)
		}
		total += recordsPerCodec
		fmt.Printf("ok produced %d records with codec %d\n", recordsPerCodec, codec)
	}
	producer.Close()

	// Read everything back with the plain consumer.
	consumer, err := sarama.NewConsumer(brokers, config())
	if err != nil {
		fail("consumer: %v", err)
	}
	pc, err := consumer.ConsumePartition(topic, 0, sarama.OffsetOldest)
	if err != nil {
		fail("consume partition: %v", err)
	}
	deadline := time.After(30 * time.Second)
	for n := 0; n < total; n++ {
		select {
		case m := <-pc.Messages():
			if m.Offset != int64(n) {
				fail("record %d has offset %d", n, m.Offset)
			}
		case e := <-pc.Errors():
			fail("consume: %v", e)
		case <-deadline:
			fail("consumed %d of %d records in 30 s", n, total)
		}
	}
	pc.Close()
	consumer.Close()
	fmt.Printf("ok consumed %d records in order\n", total)

	// A consumer group member commits what it read.
	cg, err := sarama.NewConsumerGroup(brokers, group, config())
	if err != nil {
		fail("consumer group: %v", err)
	}
	h := &handler{want: total, done: make(chan struct{})}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	go func() {
		for ctx.Err() == nil {
			if err := cg.Consume(ctx, []string{topic}, h); err != nil && ctx.Err() == nil {
				fmt.Printf("consume group: %v\n", err)
				time.Sleep(500 * time.Millisecond)
			}
		}
	}()
	select {
	case <-h.done:
	case <-ctx.Done():
		fail("group consumer saw %d of %d records", h.seen, total)
	}
	cancel()
	if err := cg.Close(); err != nil {
		fail("closing the group (its final commit): %v", err)
	}
	fmt.Printf("ok group %s consumed %d records\n", group, h.seen)

	// What the group committed, read back as a restarted application would.
	client, err := sarama.NewClient(brokers, config())
	if err != nil {
		fail("client: %v", err)
	}
	om, err := sarama.NewOffsetManagerFromClient(group, client)
	if err != nil {
		fail("offset manager: %v", err)
	}
	pom, err := om.ManagePartition(topic, 0)
	if err != nil {
		fail("manage partition: %v", err)
	}
	next, _ := pom.NextOffset()
	if next != int64(total) {
		fail("committed offset %d, want %d", next, total)
	}
	pom.Close()
	om.Close()
	client.Close()
	fmt.Printf("ok committed offset %d survives the group\n", next)

	topics, err := admin.ListTopics()
	if err != nil {
		fail("list topics: %v", err)
	}
	if _, ok := topics[topic]; !ok {
		fail("list topics: %s missing from %d topics", topic, len(topics))
	}
	admin.Close()
	fmt.Printf("ok cluster admin lists %d topics\n", len(topics))
}
