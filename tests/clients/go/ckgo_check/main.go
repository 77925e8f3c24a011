// ckgo_check drives a broker with confluent-kafka-go 0.11.6 (Debian's
// golang-github-confluentinc-confluent-kafka-go-dev, built against Debian's
// librdkafka 2.0.2), as a Go application pinned years back would: it
// creates a topic with the admin client, produces keyed records with
// headers through the idempotent producer with acks=all, reads them back
// as a consumer group member that commits, and reads the commit back from
// a new consumer. It prints one "ok ..." line per step and exits 1 with
// the error on the first failure.
//
//	ckgo_check BOOTSTRAP TOPIC GROUP
package main

import (
	"context"
	"fmt"
	"os"
	"time"

	"github.com/confluentinc/confluent-kafka-go/kafka"
)

const partitions, records = 3, 60

func fail(format string, args ...interface{}) {
	fmt.Printf("FAIL "+format+"\n", args...)
	os.Exit(1)
}

func main() {
	if len(os.Args) != 4 {
		fail("usage: ckgo_check BOOTSTRAP TOPIC GROUP")
	}
	bootstrap, topic, group := os.Args[1], os.Args[2], os.Args[3]
	fmt.Printf("ok confluent-kafka-go %s\n", func() string { _, v := kafka.LibraryVersion(); return "librdkafka " + v }())

	admin, err := kafka.NewAdminClient(&kafka.ConfigMap{"bootstrap.servers": bootstrap})
	if err != nil {
		fail("admin client: %v", err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	res, err := admin.CreateTopics(ctx, []kafka.TopicSpecification{{Topic: topic, NumPartitions: partitions, ReplicationFactor: 1}})
	cancel()
	if err != nil || len(res) != 1 || res[0].Error.Code() != kafka.ErrNoError {
		fail("create topic: %v %v", res, err)
	}
	admin.Close()
	fmt.Printf("ok created topic %s with %d partitions\n", topic, partitions)

	p, err := kafka.NewProducer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "acks": "all",
		"enable.idempotence": true, "compression.codec": "lz4", "linger.ms": 5})
	if err != nil {
		fail("producer: %v", err)
	}
	for i := 0; i < records; i++ {
		err := p.Produce(&kafka.Message{
			TopicPartition: kafka.TopicPartition{Topic: &topic, Partition: kafka.PartitionAny},
			Key:            []byte(fmt.Sprintf("k%d", i%7)),
			Value:          []byte(fmt.Sprintf("v%d", i)),
			Headers:        []kafka.Header{{Key: "n", Value: []byte(fmt.Sprintf("%d", i))}},
		}, nil)
		if err != nil {
			fail("produce %d: %v", i, err)
		}
	}
	delivered := 0
	deadline := time.After(30 * time.Second)
	for delivered < records {
		select {
		case e := <-p.Events():
			m, ok := e.(*kafka.Message)
			if !ok {
				continue
			}
			if m.TopicPartition.Error != nil {
				fail("delivery: %v", m.TopicPartition.Error)
			}
			delivered++
		case <-deadline:
			fail("%d of %d delivered in 30 s", delivered, records)
		}
	}
	p.Close()
	fmt.Printf("ok produced %d records, idempotent, acks=all, lz4\n", delivered)

	c, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group,
		"auto.offset.reset": "earliest", "enable.auto.commit": false})
	if err != nil {
		fail("consumer: %v", err)
	}
	if err := c.SubscribeTopics([]string{topic}, nil); err != nil {
		fail("subscribe: %v", err)
	}
	byKey := map[string][]int{}
	seen := 0
	end := time.Now().Add(60 * time.Second)
	for seen < records && time.Now().Before(end) {
		m, err := c.ReadMessage(time.Second)
		if err != nil {
			if kerr, ok := err.(kafka.Error); ok && kerr.Code() == kafka.ErrTimedOut {
				continue
			}
			fail("read: %v", err)
		}
		var n int
		fmt.Sscanf(string(m.Value), "v%d", &n)
		if len(m.Headers) != 1 || string(m.Headers[0].Value) != fmt.Sprintf("%d", n) {
			fail("record %s has headers %v", m.Value, m.Headers)
		}
		byKey[string(m.Key)] = append(byKey[string(m.Key)], n)
		seen++
	}
	if seen != records {
		fail("the group member read %d of %d records", seen, records)
	}
	for k, ns := range byKey {
		for i := 1; i < len(ns); i++ {
			if ns[i] <= ns[i-1] {
				fail("key %s out of order: %v", k, ns)
			}
		}
	}
	if _, err := c.Commit(); err != nil {
		fail("commit: %v", err)
	}
	c.Close()
	fmt.Printf("ok the group member read %d records, each key in order, and committed\n", seen)

	// A new consumer of the group sees the commits: everything, on every partition.
	c2, err := kafka.NewConsumer(&kafka.ConfigMap{"bootstrap.servers": bootstrap, "group.id": group})
	if err != nil {
		fail("consumer: %v", err)
	}
	tps := make([]kafka.TopicPartition, partitions)
	for i := range tps {
		tps[i] = kafka.TopicPartition{Topic: &topic, Partition: int32(i)}
	}
	committed, err := c2.Committed(tps, 10000)
	if err != nil {
		fail("committed: %v", err)
	}
	total := int64(0)
	for _, tp := range committed {
		if tp.Offset < 0 {
			fail("partition %d has no commit: %v", tp.Partition, tp.Offset)
		}
		total += int64(tp.Offset)
	}
	if total != records {
		fail("commits add up to %d, want %d: %v", total, records, committed)
	}
	c2.Close()
	fmt.Printf("ok commits add up to %d\n", total)
}
