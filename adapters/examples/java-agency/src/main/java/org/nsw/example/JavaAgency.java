package org.nsw.example;

import java.io.File;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.nio.charset.StandardCharsets;
import java.time.Duration;
import java.util.ArrayList;
import java.util.Collection;
import java.util.HashMap;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.ExecutionException;
import java.util.concurrent.atomic.AtomicBoolean;

import org.apache.avro.Schema;
import org.apache.avro.generic.GenericData;
import org.apache.avro.generic.GenericRecord;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.consumer.ConsumerRebalanceListener;
import org.apache.kafka.clients.consumer.ConsumerRecord;
import org.apache.kafka.clients.consumer.KafkaConsumer;
import org.apache.kafka.clients.consumer.OffsetAndMetadata;
import org.apache.kafka.clients.producer.KafkaProducer;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.clients.producer.ProducerRecord;
import org.apache.kafka.common.PartitionInfo;
import org.apache.kafka.common.TopicPartition;
import org.apache.kafka.common.errors.WakeupException;
import org.apache.kafka.common.header.Header;
import org.apache.kafka.common.serialization.ByteArrayDeserializer;
import org.apache.kafka.common.serialization.ByteArraySerializer;

/**
 * An agency system and a trader's reader for the hub's topics, written from the README's topic contract and
 * the published {@code .avsc} files only, with the official Kafka client and Apache Avro.
 *
 * <pre>
 * java -cp 'target/classes:target/lib/*' org.nsw.example.JavaAgency --mode agency --agency sps \
 *     --bootstrap 127.0.0.1:9092 --schemas schemas/avro
 * </pre>
 *
 * <ul>
 * <li>{@code --mode agency}: consumes {@code nsw.agency.<agency>.requests} (read_committed, group
 *     {@code agency-<agency>}), decides every item ({@code --outcome RELEASE|HOLD|REFUSE}, codes C01/H01/N01),
 *     produces the {@code AgencyDecision} to {@code nsw.agency.<agency>.decisions} with an idempotent producer
 *     (acks=all) and commits the request's offset once the decision is acknowledged (at least once; the stable
 *     {@code decision_id} makes a repeat harmless). A {@code CANCELLATION} request is only acknowledged. Prints
 *     one JSON line per event ({@code ready}, {@code decided}, {@code ignored}).</li>
 * <li>{@code --mode trader}: reads {@code nsw.responses} (read_committed, from {@code --since-ms} or the
 *     beginning) and prints each {@code ReleaseResponse} as one JSON line.</li>
 * <li>{@code --mode fingerprints}: prints the CRC-64-AVRO fingerprint of every published record as one JSON
 *     object (hex of the 8 little-endian bytes that stand in a record's single-object header).</li>
 * </ul>
 *
 * Stop conditions for scripts and tests: {@code --submission ID} (after deciding / printing that submission),
 * {@code --max N} records, {@code --timeout-s S}. Exit status: 0 done, 2 timed out, 3 a record that the
 * published schemas cannot decode (an unknown fingerprint: its offset is not committed), 64 bad arguments.
 */
public final class JavaAgency {

    static final int EXIT_TIMEOUT = 2;
    static final int EXIT_UNDECODABLE = 3;
    static final int EXIT_USAGE = 64;

    private static final String REQUEST = "nsw.v1.AgencyRequest";
    private static final String DECISION = "nsw.v1.AgencyDecision";
    private static final String RESPONSE = "nsw.v1.ReleaseResponse";

    private final Map<String, String> args;
    private final AvscSchemas schemas;
    /** Set by SIGTERM / SIGINT: the poll loop ends, the clients close, main returns. */
    private static final AtomicBoolean SIGNALLED = new AtomicBoolean();
    private final long deadline;
    private final String untilSubmission;
    private final long max;

    private JavaAgency(Map<String, String> args, AvscSchemas schemas) {
        this.args = args;
        this.schemas = schemas;
        long timeoutS = Long.parseLong(args.getOrDefault("timeout-s", "0"));
        this.deadline = timeoutS > 0 ? System.nanoTime() + timeoutS * 1_000_000_000L : Long.MAX_VALUE;
        this.untilSubmission = args.get("submission");
        this.max = Long.parseLong(args.getOrDefault("max", "0"));
    }

    public static void main(String[] argv) {
        // JSON lines in UTF-8 whatever the locale (Java 17 would otherwise write the platform charset).
        System.setOut(new PrintStream(new FileOutputStream(FileDescriptor.out), true, StandardCharsets.UTF_8));
        Map<String, String> args;
        try {
            args = parse(argv);
        } catch (IllegalArgumentException e) {
            System.err.println("java-agency: " + e.getMessage());
            System.err.println("usage: JavaAgency --mode agency|trader|fingerprints --schemas DIR [--bootstrap HOST:PORT]"
                    + " [--agency NAME] [--group ID] [--offset-reset earliest|latest] [--outcome RELEASE|HOLD|REFUSE]"
                    + " [--since-ms EPOCH_MS] [--submission ID] [--max N] [--timeout-s S]");
            System.exit(EXIT_USAGE);
            return;
        }
        int status;
        try {
            AvscSchemas schemas = new AvscSchemas(new File(args.getOrDefault("schemas", "schemas/avro")));
            JavaAgency app = new JavaAgency(args, schemas);
            status = switch (args.get("mode")) {
                case "fingerprints" -> app.fingerprints();
                case "agency" -> app.agency();
                case "trader" -> app.trader();
                default -> {
                    System.err.println("java-agency: unknown --mode " + args.get("mode"));
                    yield EXIT_USAGE;
                }
            };
        } catch (AvscSchemas.UnknownSchemaException e) {
            System.err.println("java-agency: undecodable record: " + e.getMessage());
            status = EXIT_UNDECODABLE;
        } catch (IOException | ExecutionException | RuntimeException e) {
            System.err.println("java-agency: " + e);
            status = 1;
        } catch (InterruptedException e) {
            Thread.currentThread().interrupt();
            status = 1;
        }
        System.out.flush();
        if (!SIGNALLED.get()) { // after a signal the JVM is exiting already: System.exit would block
            System.exit(status);
        }
    }

    private static Map<String, String> parse(String[] argv) {
        Map<String, String> args = new HashMap<>();
        for (int i = 0; i < argv.length; i += 2) {
            if (!argv[i].startsWith("--") || i + 1 >= argv.length) {
                throw new IllegalArgumentException("expected --name value pairs, got " + argv[i]);
            }
            args.put(argv[i].substring(2), argv[i + 1]);
        }
        if (!args.containsKey("mode")) {
            throw new IllegalArgumentException("--mode is required");
        }
        if ("agency".equals(args.get("mode")) && !args.containsKey("agency")) {
            throw new IllegalArgumentException("--agency is required in agency mode");
        }
        if (!List.of("RELEASE", "HOLD", "REFUSE").contains(args.getOrDefault("outcome", "RELEASE"))) {
            throw new IllegalArgumentException("--outcome must be RELEASE, HOLD or REFUSE");
        }
        return args;
    }

    private int fingerprints() {
        List<String> fields = new ArrayList<>();
        for (Map.Entry<String, Schema> entry : schemas.all().entrySet()) {
            fields.add(json(entry.getKey()) + ": " + json(AvscSchemas.fingerprintHex(entry.getValue())));
        }
        System.out.println("{" + String.join(", ", fields) + "}");
        return 0;
    }

    private Properties consumerProperties(String group, String reset) {
        Properties props = new Properties();
        props.put(ConsumerConfig.BOOTSTRAP_SERVERS_CONFIG, args.getOrDefault("bootstrap", "127.0.0.1:9092"));
        props.put(ConsumerConfig.ISOLATION_LEVEL_CONFIG, "read_committed"); // aborted transactions stay unseen
        props.put(ConsumerConfig.ENABLE_AUTO_COMMIT_CONFIG, "false");
        props.put(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG, reset);
        props.put(ConsumerConfig.KEY_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        props.put(ConsumerConfig.VALUE_DESERIALIZER_CLASS_CONFIG, ByteArrayDeserializer.class.getName());
        if (group != null) {
            props.put(ConsumerConfig.GROUP_ID_CONFIG, group);
        }
        return props;
    }

    /** Stops the poll loop on SIGTERM / SIGINT, closing the clients cleanly. */
    private void stopOnSignal(KafkaConsumer<?, ?> consumer) {
        Thread main = Thread.currentThread();
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            SIGNALLED.set(true);
            consumer.wakeup();
            try {
                main.join(5000);
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
            }
        }));
    }

    private int agency() throws IOException, ExecutionException, InterruptedException, AvscSchemas.UnknownSchemaException {
        String agency = args.get("agency");
        String requests = "nsw.agency." + agency + ".requests";
        String decisions = "nsw.agency." + agency + ".decisions";
        String group = args.getOrDefault("group", "agency-" + agency);
        Properties producerProps = new Properties();
        producerProps.put(ProducerConfig.BOOTSTRAP_SERVERS_CONFIG, args.getOrDefault("bootstrap", "127.0.0.1:9092"));
        producerProps.put(ProducerConfig.ACKS_CONFIG, "all");
        producerProps.put(ProducerConfig.ENABLE_IDEMPOTENCE_CONFIG, "true");
        producerProps.put(ProducerConfig.KEY_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        producerProps.put(ProducerConfig.VALUE_SERIALIZER_CLASS_CONFIG, ByteArraySerializer.class.getName());
        long decided = 0;
        try (KafkaConsumer<byte[], byte[]> consumer =
                     new KafkaConsumer<>(consumerProperties(group, args.getOrDefault("offset-reset", "earliest")));
             KafkaProducer<byte[], byte[]> producer = new KafkaProducer<>(producerProps)) {
            stopOnSignal(consumer);
            AtomicBoolean ready = new AtomicBoolean();
            consumer.subscribe(List.of(requests), new ConsumerRebalanceListener() {
                @Override
                public void onPartitionsAssigned(Collection<TopicPartition> partitions) {
                    partitions.forEach(consumer::position); // where reading starts is settled before "ready"
                    if (!partitions.isEmpty() && !ready.getAndSet(true)) {
                        System.out.println("{\"event\": \"ready\", \"topic\": " + json(requests) + ", \"group\": "
                                + json(group) + ", \"partitions\": " + partitions.size() + "}");
                        System.out.flush();
                    }
                }

                @Override
                public void onPartitionsRevoked(Collection<TopicPartition> partitions) {
                }
            });
            while (!SIGNALLED.get()) {
                if (System.nanoTime() > deadline) {
                    System.err.println("java-agency: timed out after deciding " + decided + " request(s)");
                    return EXIT_TIMEOUT;
                }
                Iterable<ConsumerRecord<byte[], byte[]>> records;
                try {
                    records = consumer.poll(Duration.ofMillis(200));
                } catch (WakeupException e) {
                    break;
                }
                for (ConsumerRecord<byte[], byte[]> record : records) {
                    String schema = header(record, "nsw-schema", REQUEST);
                    if (record.value() == null || !REQUEST.equals(schema)) {
                        commit(consumer, record);
                        continue;
                    }
                    GenericRecord request = schemas.decode(REQUEST, record.value()); // exits 3 uncommitted
                    String submission = request.get("submission_id").toString();
                    if ("CANCELLATION".equals(request.get("kind").toString())) {
                        // Nothing to decide: a real system stops work on the submission here.
                        event("ignored", request, null);
                        commit(consumer, record);
                        continue;
                    }
                    GenericRecord decision = decide(request);
                    int version = (Integer) decision.get("version");
                    ProducerRecord<byte[], byte[]> out = new ProducerRecord<>(decisions, null,
                            submission.getBytes(StandardCharsets.UTF_8), schemas.encode(decision));
                    out.headers().add("nsw-schema", DECISION.getBytes(StandardCharsets.UTF_8));
                    out.headers().add("nsw-submission-id", submission.getBytes(StandardCharsets.UTF_8));
                    out.headers().add("nsw-version", Integer.toString(version).getBytes(StandardCharsets.UTF_8));
                    out.headers().add("content-type", "avro/binary".getBytes(StandardCharsets.UTF_8));
                    producer.send(out).get(); // acknowledged by all in-sync replicas
                    commit(consumer, record); // only then is the request done: at least once
                    decided++;
                    event("decided", request, decision);
                    if (submission.equals(untilSubmission) || (max > 0 && decided >= max)) {
                        return 0;
                    }
                }
            }
        }
        return 0;
    }

    /** The agency's business rules: every item gets the same outcome here. */
    private GenericRecord decide(GenericRecord request) {
        String outcome = args.getOrDefault("outcome", "RELEASE");
        String code = switch (outcome) {
            case "RELEASE" -> "C01";
            case "HOLD" -> "H01";
            case "REFUSE" -> "N01";
            default -> throw new IllegalArgumentException("--outcome must be RELEASE, HOLD or REFUSE");
        };
        Schema decisionSchema = schemas.get(DECISION);
        Schema itemSchema = schemas.get("nsw.v1.ItemDecision");
        Schema outcomeSchema = itemSchema.getField("outcome").schema();
        Schema holdReasonSchema = itemSchema.getField("hold_reason").schema().getTypes().stream()
                .filter(s -> s.getType() == Schema.Type.ENUM).findFirst().orElseThrow();
        List<GenericRecord> items = new ArrayList<>();
        for (Object item : (Collection<?>) request.get("items")) {
            GenericRecord decided = new GenericData.Record(itemSchema);
            decided.put("sequence", ((GenericRecord) item).get("sequence"));
            decided.put("outcome", new GenericData.EnumSymbol(outcomeSchema, outcome));
            decided.put("code", code);
            decided.put("reason", "decided by the Java example agency");
            decided.put("hold_reason", "HOLD".equals(outcome) ? new GenericData.EnumSymbol(holdReasonSchema, "INSPECTION") : null);
            decided.put("valid_until", null);
            decided.put("selected_by", new ArrayList<String>()); // no risk profile or rule to name here
            items.add(decided);
        }
        String requestId = request.get("request_id").toString();
        String submission = request.get("submission_id").toString();
        int version = (Integer) request.get("version");
        GenericRecord decision = new GenericData.Record(decisionSchema);
        decision.put("decision_id", requestId + ":java"); // stable: a re-sent decision is no news to the hub
        decision.put("submission_id", submission);
        decision.put("version", version);
        decision.put("agency", request.get("agency").toString());
        decision.put("decided_at", System.currentTimeMillis());
        decision.put("items", items);
        decision.put("agency_reference", "JAVA-" + submission + "-" + version);
        decision.put("request_id", requestId); // the request answered: the hub refuses a decision without it
        decision.put("decided_by", null); // only the hub's console names an officer
        return decision;
    }

    private int trader() throws AvscSchemas.UnknownSchemaException {
        String topic = args.getOrDefault("topic", "nsw.responses");
        long printed = 0;
        try (KafkaConsumer<byte[], byte[]> consumer = new KafkaConsumer<>(consumerProperties(null, "earliest"))) {
            stopOnSignal(consumer);
            List<TopicPartition> partitions = new ArrayList<>();
            for (PartitionInfo info : consumer.partitionsFor(topic, Duration.ofSeconds(30))) {
                partitions.add(new TopicPartition(topic, info.partition()));
            }
            consumer.assign(partitions);
            if (args.containsKey("since-ms")) {
                long since = Long.parseLong(args.get("since-ms"));
                Map<TopicPartition, Long> times = new HashMap<>();
                partitions.forEach(tp -> times.put(tp, since));
                Map<TopicPartition, Long> ends = consumer.endOffsets(partitions);
                consumer.offsetsForTimes(times).forEach((tp, found) -> consumer.seek(tp, found == null ? ends.get(tp) : found.offset()));
            } else {
                consumer.seekToBeginning(partitions);
            }
            while (!SIGNALLED.get()) {
                if (System.nanoTime() > deadline) {
                    System.err.println("java-agency: timed out after " + printed + " response(s)");
                    return EXIT_TIMEOUT;
                }
                Iterable<ConsumerRecord<byte[], byte[]>> records;
                try {
                    records = consumer.poll(Duration.ofMillis(200));
                } catch (WakeupException e) {
                    break;
                }
                for (ConsumerRecord<byte[], byte[]> record : records) {
                    if (record.value() == null || !RESPONSE.equals(header(record, "nsw-schema", RESPONSE))) {
                        continue;
                    }
                    GenericRecord response = schemas.decode(RESPONSE, record.value()); // exits 3
                    System.out.println(GenericData.get().toString(response));
                    System.out.flush();
                    printed++;
                    if (response.get("submission_id").toString().equals(untilSubmission) || (max > 0 && printed >= max)) {
                        return 0;
                    }
                }
            }
        }
        return 0;
    }

    private static void commit(KafkaConsumer<byte[], byte[]> consumer, ConsumerRecord<byte[], byte[]> record) {
        consumer.commitSync(Map.of(new TopicPartition(record.topic(), record.partition()),
                new OffsetAndMetadata(record.offset() + 1)));
    }

    private static String header(ConsumerRecord<byte[], byte[]> record, String name, String otherwise) {
        Header header = record.headers().lastHeader(name);
        return header == null || header.value() == null ? otherwise : new String(header.value(), StandardCharsets.UTF_8);
    }

    private static void event(String kind, GenericRecord request, GenericRecord decision) {
        System.out.println("{\"event\": " + json(kind) + ", \"request_id\": " + json(request.get("request_id").toString())
                + ", \"submission_id\": " + json(request.get("submission_id").toString())
                + ", \"kind\": " + json(request.get("kind").toString())
                + (decision == null ? "" : ", \"decision\": " + GenericData.get().toString(decision)) + "}");
        System.out.flush();
    }

    private static String json(String text) {
        StringBuilder out = new StringBuilder("\"");
        for (char c : text.toCharArray()) {
            switch (c) {
                case '"' -> out.append("\\\"");
                case '\\' -> out.append("\\\\");
                default -> {
                    if (c < 0x20) {
                        out.append(String.format("\\u%04x", (int) c));
                    } else {
                        out.append(c);
                    }
                }
            }
        }
        return out.append('"').toString();
    }
}
