// Checks that the broker started by scripts/kafka.sh does what the engine
// needs: idempotent produce, a consume-transform-produce transaction that also
// commits the consumer offsets, an aborted transaction that read_committed
// consumers never see, the __transaction_state topic, and a compacted topic
// whose log the cleaner really compacts.
//
//   scripts/kafka.sh selftest     (runs: java -cp '.kafka/lib/*' scripts/kafka/SelfTest.java BOOTSTRAP)
//
// Uses only kafka-clients; creates topics named selftest-* and deletes them.
import java.time.Duration;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.Set;
import java.util.concurrent.TimeUnit;

import org.apache.kafka.clients.admin.Admin;
import org.apache.kafka.clients.admin.AdminClientConfig;
import org.apache.kafka.clients.admin.Config;
import org.apache.kafka.clients.admin.ListTopicsOptions;
import org.apache.kafka.clients.admin.NewTopic;
import org.apache.kafka.clients.admin.TransactionDescription;
import org.apache.kafka.clients.admin.TransactionState;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.ConsumerRecords;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.config.ConfigResource;
import org.apache.kafka.common.serialization.StringDeserializer;
import org.apache.kafka.common.serialization.StringSerializer;

public class SelfTest {
    static String bootstrap;
    static long t0 = System.nanoTime();

    static void check(boolean ok, String what) {
        String t = String.format("%5.1fs", (System.nanoTime() - t0) / 1e9);
        if (!ok) throw new AssertionError("FAIL " + t + "  " + what);
        System.out.println("ok   " + t + "  " + what);
    }

    static Properties base() {
        Properties p = new Properties();
        p.put("bootstrap.servers", bootstrap);
        return p;
    }

    static KafkaProducer<String, String> producer(String txId) {
        Properties p = base();
        p.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, StringSerializer.class.getName());
        p.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        p.put(ProducerConfig.ACKS_CONFIG, "all");
        if (txId != null) p.put(ProducerConfig.TRANSACTIONAL_ID_CONFIG, txId);
        return new KafkaProducer<>(p);
    }

    static KafkaConsumer<String, String> consumer(String group, String isolation) {
        Properties p = base();
        p.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, StringDeserializer.class.getName());
        p.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, isolation);
        p.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        p.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, "earliest");
        if (group != null) p.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        return new KafkaConsumer<>(p);
    }

    /** All records of a topic from the beginning up to its end (LSO for read_committed). */
    static List<ConsumerRecord<String, String>> readAll(Admin admin, String topic, String isolation) throws Exception {
        int parts = admin.describeTopics(List.of(topic)).allTopicNames().get().get(topic).partitions().size();
        List<TopicPartition> tps = new ArrayList<>();
        for (int i = 0; i < parts; i++) tps.add(new TopicPartition(topic, i));
        List<ConsumerRecord<String, String>> out = new ArrayList<>();
        try (KafkaConsumer<String, String> c = consumer(null, isolation)) {
            c.assign(tps);
            c.seekToBeginning(tps);
            Map<TopicPartition, Long> end = c.endOffsets(tps);
            long deadline = System.currentTimeMillis() + 30_000;
            while (tps.stream().anyMatch(tp -> c.position(tp) < end.get(tp))) {
                if (System.currentTimeMillis() > deadline) throw new IllegalStateException("reading " + topic + " timed out");
                for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) out.add(r);
            }
        }
        return out;
    }

    public static void main(String[] args) throws Exception {
        if (args.length != 1) {
            System.err.println("usage: SelfTest BOOTSTRAP");
            System.exit(2);
        }
        bootstrap = args[0];
        String run = "selftest-" + Long.toHexString(System.currentTimeMillis());
        String in = run + "-in", out = run + "-out", ckpt = run + "-ckpt", group = run + "-group", txId = run + "-tx";
        boolean failed = false;
        Properties ap = base();
        ap.put(AdminClientConfig.DEFAULT_API_TIMEOUT_MS_CONFIG, "30000");
        try (Admin admin = Admin.create(ap)) {
            try {
                admin.createTopics(List.of(
                        new NewTopic(in, 2, (short) 1),
                        new NewTopic(out, 2, (short) 1),
                        // compacted like the engine's checkpoint topic; small segments so the cleaner has work soon
                        new NewTopic(ckpt, 1, (short) 1).configs(Map.of(
                                "cleanup.policy", "compact",
                                "segment.ms", "100",
                                "min.cleanable.dirty.ratio", "0.01",
                                "delete.retention.ms", "100"))))
                        .all().get(30, TimeUnit.SECONDS);
                check(true, "created " + in + ", " + out + " (2 partitions) and " + ckpt + " (compacted)");
                ConfigResource res = new ConfigResource(ConfigResource.Type.TOPIC, ckpt);
                Config cfg = admin.describeConfigs(List.of(res)).all().get().get(res);
                check("compact".equals(cfg.get("cleanup.policy").value()), ckpt + " has cleanup.policy=compact");

                // 1. idempotent producer writes the input
                try (KafkaProducer<String, String> p = producer(null)) {
                    for (int i = 0; i < 10; i++) p.send(new ProducerRecord<>(in, "k" + i, "v" + i)).get();
                }
                check(true, "idempotent producer wrote 10 records to " + in);

                // 2. consume-transform-produce: outputs, checkpoint and consumer offsets in one transaction
                try (KafkaConsumer<String, String> c = consumer(group, "read_committed");
                     KafkaProducer<String, String> p = producer(txId)) {
                    p.initTransactions();
                    c.subscribe(List.of(in));
                    List<ConsumerRecord<String, String>> got = new ArrayList<>();
                    long deadline = System.currentTimeMillis() + 30_000;
                    while (got.size() < 10 && System.currentTimeMillis() < deadline) {
                        for (ConsumerRecord<String, String> r : c.poll(Duration.ofMillis(200))) got.add(r);
                    }
                    check(got.size() == 10, "group " + group + " consumed " + got.size() + "/10 input records");
                    Map<TopicPartition, OffsetAndMetadata> offsets = new HashMap<>();
                    p.beginTransaction();
                    for (ConsumerRecord<String, String> r : got) {
                        p.send(new ProducerRecord<>(out, r.key(), r.value().toUpperCase()));
                        p.send(new ProducerRecord<>(ckpt, "partition-" + r.partition(), Long.toString(r.offset())));
                        offsets.put(new TopicPartition(r.topic(), r.partition()), new OffsetAndMetadata(r.offset() + 1));
                    }
                    p.sendOffsetsToTransaction(offsets, c.groupMetadata());
                    p.commitTransaction();
                    check(true, "transaction committed: 10 outputs, 10 checkpoint records and the group's offsets");

                    // 3. an aborted transaction
                    p.beginTransaction();
                    for (int i = 0; i < 5; i++) p.send(new ProducerRecord<>(out, "aborted" + i, "ABORTED"));
                    p.flush();
                    p.abortTransaction();
                    check(true, "second transaction (5 records) aborted");
                }

                long committed = admin.listConsumerGroupOffsets(group).partitionsToOffsetAndMetadata().get()
                        .values().stream().mapToLong(OffsetAndMetadata::offset).sum();
                check(committed == 10, "offsets committed through the transaction sum to " + committed + " (want 10)");

                List<ConsumerRecord<String, String>> rc = readAll(admin, out, "read_committed");
                check(rc.size() == 10 && rc.stream().noneMatch(r -> r.value().equals("ABORTED")),
                        "read_committed sees " + rc.size() + " records of " + out + " (want 10, none aborted)");
                List<ConsumerRecord<String, String>> ru = readAll(admin, out, "read_uncommitted");
                check(ru.size() == 15, "read_uncommitted sees " + ru.size() + " records (want 15: aborted data stays in the log)");

                Set<String> names = admin.listTopics(new ListTopicsOptions().listInternal(true)).names().get();
                check(names.contains("__transaction_state"), "__transaction_state exists");
                TransactionDescription td = admin.describeTransactions(List.of(txId)).all().get().get(txId);
                check(td.state() == TransactionState.COMPLETE_ABORT, "transaction " + txId + " is in state " + td.state() + " (want CompleteAbort)");

                // 4. compaction: many values for one key over several segments; the cleaner must drop old ones
                try (KafkaProducer<String, String> p = producer(null)) {
                    for (int batch = 0; batch < 5; batch++) {
                        for (int i = 0; i < 40; i++) p.send(new ProducerRecord<>(ckpt, "same-key", "value-" + (batch * 40 + i)));
                        p.flush();
                        Thread.sleep(250); // > segment.ms: the next batch opens a new segment
                    }
                    p.send(new ProducerRecord<>(ckpt, "roll", "x")).get();
                }
                int written = 200;
                long deadline = System.currentTimeMillis() + 90_000;
                int now = written;
                String last = null;
                while (System.currentTimeMillis() < deadline) {
                    List<ConsumerRecord<String, String>> rs = readAll(admin, ckpt, "read_committed");
                    now = (int) rs.stream().filter(r -> r.key().equals("same-key")).count();
                    for (ConsumerRecord<String, String> r : rs) if (r.key().equals("same-key")) last = r.value();
                    if (now < written) break;
                    Thread.sleep(2000);
                }
                check(now < written && "value-199".equals(last),
                        "log cleaner compacted " + ckpt + ": " + written + " values of one key written, " + now + " left, latest " + last);
            } catch (AssertionError e) {
                System.out.println(e.getMessage());
                failed = true;
            } finally {
                try {
                    admin.deleteTopics(List.of(in, out, ckpt)).all().get(30, TimeUnit.SECONDS);
                    admin.deleteConsumerGroups(List.of(group)).all().get(30, TimeUnit.SECONDS);
                } catch (Exception e) {
                    System.out.println("note: cleaning up the selftest topics failed: " + e);
                }
            }
        }
        if (failed) {
            System.out.println("selftest FAILED");
            System.exit(1);
        }
        System.out.println("selftest passed");
    }
}
