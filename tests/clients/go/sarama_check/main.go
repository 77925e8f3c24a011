// sarama_check drives a broker with Sarama 1.22 (Debian's
// golang-github-shopify-sarama-dev) configured for Kafka 2.1, as a deployed
// Go application pinned years back would: it produces keyed records in
// every codec (zstd refused, as Kafka refuses it in Produce v3), reads
// them back, commits offsets as a consumer group member
// (OffsetCommit v1 in Sarama 1.22), reads the commit back from a new
// consumer group session, and lists topics with the cluster admin
// (DescribeConfigs v0), having created the topic with it; then adds
// partitions, alters and describes a config, and creates and deletes a
// topic. With --committed it only reads the group's commit back (after a
// broker restart). With --group-of-two it runs two members of one group
// on a 4-partition topic: they split the partitions 2 + 2, read every
// record once between them, and commit all of it. It prints one "ok ..."
// line per step and exits 1 with the error on the first failure.
//
//	sarama_check [--committed | --group-of-two] BOOTSTRAP TOPIC GROUP
package main

import (
	"context"
	"fmt"
	"os"
	"sort"
	"sync"
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
	args := os.Args[1:]
	mode := ""
	if len(args) > 0 && (args[0] == "--committed" || args[0] == "--group-of-two") {
		mode, args = args[0], args[1:]
	}
	if len(args) != 3 {
		fail("usage: sarama_check [--committed | --group-of-two] BOOTSTRAP TOPIC GROUP")
	}
	brokers, topic, group := []string{args[0]}, args[1], args[2]
	switch mode {
	case "--committed":
		checkCommitted(brokers, topic, group, 4*recordsPerCodec)
		return
	case "--group-of-two":
		groupOfTwo(brokers, topic, group)
		return
	}

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
				Headers: []sarama.RecordHeader{
					{Key: []byte("codec"), Value: []byte(fmt.Sprintf("%d", codec))},
				},
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
			if string(m.Key) != fmt.Sprintf("k%d", n%recordsPerCodec%5) {
				fail("record %d has key %q", n, m.Key)
			}
			if len(m.Headers) != 1 || string(m.Headers[0].Key) != "codec" {
				fail("record %d has headers %v", n, m.Headers)
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

	checkCommitted(brokers, topic, group, int64(total))

	topics, err := admin.ListTopics()
	if err != nil {
		fail("list topics: %v", err)
	}
	if d, ok := topics[topic]; !ok || d.NumPartitions != 1 {
		fail("list topics: %s missing or not 1 partition in %v", topic, topics)
	}
	fmt.Printf("ok cluster admin lists %d topics\n", len(topics))

	// The rest of the admin: partitions, configs, delete.
	if err := admin.CreatePartitions(topic, 3, nil, false); err != nil {
		fail("create partitions: %v", err)
	}
	retention := "3600000"
	if err := admin.AlterConfig(sarama.TopicResource, topic, map[string]*string{"retention.ms": &retention}, false); err != nil {
		fail("alter config: %v", err)
	}
	entries, err := admin.DescribeConfig(sarama.ConfigResource{Type: sarama.TopicResource, Name: topic, ConfigNames: []string{"retention.ms"}})
	if err != nil {
		fail("describe config: %v", err)
	}
	if len(entries) != 1 || entries[0].Value != retention {
		fail("describe config: %v", entries)
	}
	md, err := admin.DescribeTopics([]string{topic})
	if err != nil || len(md) != 1 || len(md[0].Partitions) != 3 {
		fail("describe topics after adding partitions: %v %v", md, err)
	}
	fmt.Printf("ok partitions added (3) and retention.ms set and described\n")
	other := topic + "-deleted"
	if err := admin.CreateTopic(other, &sarama.TopicDetail{NumPartitions: 2, ReplicationFactor: 1}, false); err != nil {
		fail("create topic %s: %v", other, err)
	}
	if err := admin.DeleteTopic(other); err != nil {
		fail("delete topic: %v", err)
	}
	fmt.Printf("ok topic %s created and deleted\n", other)
	admin.Close()
}

// checkCommitted reads the group's committed offset of partition 0 as a
// restarted application would.
func checkCommitted(brokers []string, topic, group string, want int64) {
	next := committed(brokers, topic, group, 1)[0]
	if next != want {
		fail("committed offset %d, want %d", next, want)
	}
	fmt.Printf("ok committed offset %d survives the group\n", next)
}

// committed reads the group's committed offsets of partitions 0..n-1 with a
// fresh client, as a restarted application would.
func committed(brokers []string, topic, group string, n int32) []int64 {
	client, err := sarama.NewClient(brokers, config())
	if err != nil {
		fail("client: %v", err)
	}
	om, err := sarama.NewOffsetManagerFromClient(group, client)
	if err != nil {
		fail("offset manager: %v", err)
	}
	out := make([]int64, n)
	for part := int32(0); part < n; part++ {
		pom, err := om.ManagePartition(topic, part)
		if err != nil {
			fail("manage partition %d: %v", part, err)
		}
		out[part], _ = pom.NextOffset()
		pom.Close()
	}
	om.Close()
	client.Close()
	return out
}

// member is one consumer of a group of two: the partitions of its current
// session and every record it was given.
type member struct {
	mu     sync.Mutex
	claims []int32
	seen   []string
}

func (m *member) Setup(s sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims = append([]int32(nil), s.Claims()[topicOf(s)]...)
	sort.Slice(m.claims, func(i, j int) bool { return m.claims[i] < m.claims[j] })
	return nil
}

func (m *member) Cleanup(sarama.ConsumerGroupSession) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	m.claims = nil
	return nil
}

func (m *member) ConsumeClaim(s sarama.ConsumerGroupSession, claim sarama.ConsumerGroupClaim) error {
	for msg := range claim.Messages() {
		m.mu.Lock()
		m.seen = append(m.seen, fmt.Sprintf("%d/%d", msg.Partition, msg.Offset))
		m.mu.Unlock()
		s.MarkMessage(msg, "")
	}
	return nil
}

func (m *member) state() ([]int32, int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]int32(nil), m.claims...), len(m.seen)
}

func topicOf(s sarama.ConsumerGroupSession) string {
	for t := range s.Claims() {
		return t
	}
	return ""
}

// groupOfTwo: two members split a 4-partition topic 2 + 2 before anything
// is written, then read 40 records between them, each once, and commit.
func groupOfTwo(brokers []string, topic, group string) {
	const partitions, records = 4, 40
	admin, err := sarama.NewClusterAdmin(brokers, config())
	if err != nil {
		fail("cluster admin: %v", err)
	}
	if err := admin.CreateTopic(topic, &sarama.TopicDetail{NumPartitions: partitions, ReplicationFactor: 1}, false); err != nil {
		fail("create topic: %v", err)
	}
	admin.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	members := []*member{{}, {}}
	groups := make([]sarama.ConsumerGroup, len(members))
	for i, m := range members {
		c := config()
		c.Consumer.Offsets.CommitInterval = 200 * time.Millisecond
		cg, err := sarama.NewConsumerGroup(brokers, group, c)
		if err != nil {
			fail("consumer group member %d: %v", i, err)
		}
		groups[i] = cg
		go func(cg sarama.ConsumerGroup, m *member) {
			for ctx.Err() == nil {
				if err := cg.Consume(ctx, []string{topic}, m); err != nil && ctx.Err() == nil {
					fmt.Printf("consume group: %v\n", err)
					time.Sleep(500 * time.Millisecond)
				}
			}
		}(cg, m)
	}
	split := func() bool {
		a, _ := members[0].state()
		b, _ := members[1].state()
		return len(a) == 2 && len(b) == 2
	}
	for !split() {
		if ctx.Err() != nil {
			a, _ := members[0].state()
			b, _ := members[1].state()
			fail("no 2 + 2 split: %v and %v", a, b)
		}
		time.Sleep(100 * time.Millisecond)
	}
	a, _ := members[0].state()
	b, _ := members[1].state()
	fmt.Printf("ok members split the partitions %v + %v\n", a, b)

	c := config()
	c.Producer.Partitioner = sarama.NewManualPartitioner
	p, err := sarama.NewSyncProducer(brokers, c)
	if err != nil {
		fail("producer: %v", err)
	}
	for i := 0; i < records; i++ {
		msg := &sarama.ProducerMessage{Topic: topic, Partition: int32(i % partitions),
			Value: sarama.StringEncoder(fmt.Sprintf("g2-%d", i))}
		if _, _, err := p.SendMessage(msg); err != nil {
			fail("produce: %v", err)
		}
	}
	p.Close()
	for {
		_, na := members[0].state()
		_, nb := members[1].state()
		if na+nb >= records {
			break
		}
		if ctx.Err() != nil {
			fail("the members read %d + %d of %d records", na, nb, records)
		}
		time.Sleep(100 * time.Millisecond)
	}
	time.Sleep(time.Second) // a few commit intervals
	cancel()
	for i, cg := range groups {
		if err := cg.Close(); err != nil {
			fail("closing member %d (its final commit): %v", i, err)
		}
	}
	seen := map[string]int{}
	for _, m := range members {
		for _, s := range m.seen {
			seen[s]++
		}
	}
	if len(seen) != records {
		fail("%d distinct records read, want %d", len(seen), records)
	}
	for s, n := range seen {
		if n != 1 {
			fail("record %s read %d times", s, n)
		}
	}
	fmt.Printf("ok the two members read %d + %d records, each once\n", len(members[0].seen), len(members[1].seen))
	for part, next := range committed(brokers, topic, group, partitions) {
		if next != records/partitions {
			fail("partition %d committed at %d, want %d", part, next, records/partitions)
		}
	}
	fmt.Printf("ok every partition committed at %d\n", records/partitions)
}
