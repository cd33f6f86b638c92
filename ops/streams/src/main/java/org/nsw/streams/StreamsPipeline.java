package org.nsw.streams;

import java.io.File;
import java.io.IOException;
import java.nio.charset.StandardCharsets;
import java.util.ArrayList;
import java.util.HashMap;
import java.util.Iterator;
import java.util.List;
import java.util.Map;
import java.util.Properties;
import java.util.concurrent.CountDownLatch;

import com.fasterxml.jackson.databind.JsonNode;
import com.fasterxml.jackson.databind.node.ObjectNode;
import org.apache.kafka.clients.consumer.ConsumerConfig;
import org.apache.kafka.clients.producer.ProducerConfig;
import org.apache.kafka.common.serialization.Serde;
import org.apache.kafka.common.serialization.Serdes;
import org.apache.kafka.streams.KafkaStreams;
import org.apache.kafka.streams.KeyValue;
import org.apache.kafka.streams.StreamsBuilder;
import org.apache.kafka.streams.StreamsConfig;
import org.apache.kafka.streams.Topology;
import org.apache.kafka.streams.kstream.Consumed;
import org.apache.kafka.streams.kstream.Produced;
import org.apache.kafka.streams.processor.api.Processor;
import org.apache.kafka.streams.processor.api.ProcessorContext;
import org.apache.kafka.streams.processor.api.Record;
import org.apache.kafka.streams.state.KeyValueStore;
import org.apache.kafka.streams.state.StoreBuilder;
import org.apache.kafka.streams.state.Stores;

/**
 * The hub's fused pipeline as a Kafka Streams application with {@code processing.guarantee=exactly_once_v2}:
 * the comparison {@code nsw bench streams} runs beside {@code make bench}.
 *
 * <pre>
 *   PREFIX.submissions (key: submission id, value: JSON submission)
 *     → route        → PREFIX.agency.A.requests (one per agency that must decide) + PREFIX.routing (the plan)
 *     → engine A     → PREFIX.agency.A.decisions
 *     → aggregate    (state store "pending" keyed by submission id, changelogged) → PREFIX.responses
 *   a submission the router cannot read (no key, not JSON, no items) → PREFIX.dlq (with the reason); it goes on
 * </pre>
 *
 * <p>Every hop goes through its topic, as in the hub, so each is a sub-topology of its own and a record is
 * visible to the next hop once its transaction commits (every {@code commit.interval.ms}).
 *
 * <p>Arguments, each {@code name=value}: {@code bootstrap}, {@code prefix}, {@code refdata} (the hub's refdata
 * directory), {@code application.id}, {@code state.dir}, {@code threads} (default 1) and
 * {@code commit.interval.ms} (default 100). Prints {@code RUNNING} on stdout when the application runs, and
 * stops cleanly on SIGTERM.
 */
public final class StreamsPipeline {

    static final String STORE = "pending";

    private StreamsPipeline() {
    }

    /** A record for a topic chosen per record (routing's requests, plan and dead letters). */
    record Out(String topic, byte[] value) {
    }

    static Topology topology(String prefix, Rules rules) {
        StreamsBuilder builder = new StreamsBuilder();
        Serde<String> keys = Serdes.String();
        Serde<byte[]> bytes = Serdes.ByteArray();
        Serde<Out> out = Serdes.serdeFrom((topic, record) -> record.value(), (topic, data) -> new Out(topic, data));

        builder.stream(prefix + ".submissions", Consumed.with(keys, bytes))
                .flatMapValues((key, value) -> route(prefix, rules, key, value))
                .to((key, record, context) -> record.topic(), Produced.with(keys, out));

        List<String> decisions = new ArrayList<>();
        for (String agency : Rules.AGENCIES) {
            builder.stream(prefix + ".agency." + agency + ".requests", Consumed.with(keys, bytes))
                    .mapValues(value -> decide(rules, agency, value))
                    .to(prefix + ".agency." + agency + ".decisions", Produced.with(keys, bytes));
            decisions.add(prefix + ".agency." + agency + ".decisions");
        }

        StoreBuilder<KeyValueStore<String, byte[]>> store = Stores.keyValueStoreBuilder(
                Stores.inMemoryKeyValueStore(STORE), keys, bytes).withLoggingEnabled(Map.of());
        builder.addStateStore(store);
        List<String> aggregated = new ArrayList<>(decisions);
        aggregated.add(0, prefix + ".routing");
        builder.stream(aggregated, Consumed.with(keys, bytes))
                .process(() -> new Aggregator(rules), STORE)
                .to(prefix + ".responses", Produced.with(keys, bytes));
        return builder.build();
    }

    static List<Out> route(String prefix, Rules rules, String key, byte[] value) {
        List<Out> records = new ArrayList<>();
        try {
            if (key == null) { // the aggregation is keyed by submission id
                throw new Rules.BadInput("a submission needs its submission id as key");
            }
            JsonNode submission = rules.parse(value);
            Map<String, List<JsonNode>> routes = rules.route(submission);
            for (Map.Entry<String, List<JsonNode>> route : routes.entrySet()) {
                records.add(new Out(prefix + ".agency." + route.getKey() + ".requests",
                        rules.request(submission, route.getKey(), route.getValue())));
            }
            records.add(new Out(prefix + ".routing", rules.plan(submission, routes.keySet())));
        } catch (Rules.BadInput | IOException e) {
            ObjectNode letter = rules.json().createObjectNode();
            letter.put("reason", e.getMessage());
            letter.put("value", value == null ? null : new String(value, StandardCharsets.UTF_8));
            records.clear();
            records.add(new Out(prefix + ".dlq", letter.toString().getBytes(StandardCharsets.UTF_8)));
        }
        return records;
    }

    static byte[] decide(Rules rules, String agency, byte[] value) {
        try {
            return rules.decide(agency, value);
        } catch (IOException e) { // only the router writes requests: a request it wrote always reads back
            throw new IllegalStateException("unreadable request on " + agency, e);
        }
    }

    /**
     * Collects the plan and the decisions of a submission in the changelogged store; writes one response when
     * every agency of the plan has decided, then forgets the submission.
     */
    static final class Aggregator implements Processor<String, byte[], String, byte[]> {
        private final Rules rules;
        private ProcessorContext<String, byte[]> context;
        private KeyValueStore<String, byte[]> pending;

        Aggregator(Rules rules) {
            this.rules = rules;
        }

        @Override
        public void init(ProcessorContext<String, byte[]> context) {
            this.context = context;
            this.pending = context.getStateStore(STORE);
        }

        @Override
        public void process(Record<String, byte[]> record) {
            try {
                JsonNode incoming = rules.json().readTree(record.value());
                byte[] stored = pending.get(record.key());
                ObjectNode state = stored == null ? rules.json().createObjectNode()
                        : (ObjectNode) rules.json().readTree(stored);
                if (incoming.has("agencies")) {
                    state.set("agencies", incoming.path("agencies"));
                } else {
                    state.withObjectProperty("decisions").put(incoming.path("agency").asText(), incoming.path("outcome").asText());
                }
                JsonNode agencies = state.path("agencies");
                JsonNode decided = state.path("decisions");
                boolean complete = agencies.isArray() && decided.size() >= agencies.size();
                for (Iterator<JsonNode> it = agencies.elements(); complete && it.hasNext(); ) {
                    complete = decided.has(it.next().asText());
                }
                if (!complete) {
                    pending.put(record.key(), rules.json().writeValueAsBytes(state));
                    return;
                }
                pending.delete(record.key());
                Map<String, String> outcomes = new HashMap<>();
                decided.properties().forEach(e -> outcomes.put(e.getKey(), e.getValue().asText()));
                ObjectNode response = rules.json().createObjectNode();
                response.put("submission_id", record.key());
                response.put("outcome", Rules.strongest(outcomes.values()));
                response.set("decisions", decided);
                context.forward(record.withValue(rules.json().writeValueAsBytes(response)));
            } catch (IOException e) { // the plan and the decisions are written by this application
                throw new IllegalStateException("unreadable plan or decision for " + record.key(), e);
            }
        }
    }

    private static Map<String, String> arguments(String[] args) {
        Map<String, String> options = new HashMap<>();
        for (String arg : args) {
            KeyValue<String, String> pair = arg.contains("=")
                    ? KeyValue.pair(arg.substring(0, arg.indexOf('=')), arg.substring(arg.indexOf('=') + 1))
                    : KeyValue.pair(arg, "");
            options.put(pair.key, pair.value);
        }
        for (String required : List.of("bootstrap", "prefix", "refdata", "application.id", "state.dir")) {
            if (!options.containsKey(required)) {
                throw new IllegalArgumentException("missing argument " + required + "=...");
            }
        }
        return options;
    }

    public static void main(String[] args) throws Exception {
        Map<String, String> options;
        try {
            options = arguments(args);
        } catch (IllegalArgumentException e) {
            System.err.println("nsw-streams: " + e.getMessage());
            System.exit(2);
            return;
        }
        Rules rules = new Rules(new File(options.get("refdata")));
        Properties props = new Properties();
        props.put(StreamsConfig.APPLICATION_ID_CONFIG, options.get("application.id"));
        props.put(StreamsConfig.BOOTSTRAP_SERVERS_CONFIG, options.get("bootstrap"));
        props.put(StreamsConfig.PROCESSING_GUARANTEE_CONFIG, StreamsConfig.EXACTLY_ONCE_V2);
        props.put(StreamsConfig.STATE_DIR_CONFIG, options.get("state.dir"));
        props.put(StreamsConfig.NUM_STREAM_THREADS_CONFIG, options.getOrDefault("threads", "1"));
        props.put(StreamsConfig.COMMIT_INTERVAL_MS_CONFIG, options.getOrDefault("commit.interval.ms", "100"));
        // One broker: the internal changelog has one replica, as the hub's topics do.
        props.put(StreamsConfig.REPLICATION_FACTOR_CONFIG, 1);
        props.put(StreamsConfig.consumerPrefix(ConsumerConfig.AUTO_OFFSET_RESET_CONFIG), "earliest");
        props.put(StreamsConfig.producerPrefix(ProducerConfig.LINGER_MS_CONFIG), 5);
        KafkaStreams streams = new KafkaStreams(topology(options.get("prefix"), rules), props);
        CountDownLatch stopped = new CountDownLatch(1);
        streams.setStateListener((now, before) -> {
            if (now == KafkaStreams.State.RUNNING) {
                System.out.println("RUNNING");
                System.out.flush();
            } else if (now == KafkaStreams.State.ERROR || now == KafkaStreams.State.NOT_RUNNING) {
                stopped.countDown();
            }
        });
        streams.setUncaughtExceptionHandler(e -> {
            System.err.println("nsw-streams: " + e);
            return org.apache.kafka.streams.errors.StreamsUncaughtExceptionHandler.StreamThreadExceptionResponse
                    .SHUTDOWN_CLIENT;
        });
        Runtime.getRuntime().addShutdownHook(new Thread(() -> {
            streams.close();
            stopped.countDown();
        }, "nsw-streams-shutdown"));
        streams.start();
        stopped.await();
        streams.close();
        System.exit(streams.state() == KafkaStreams.State.ERROR ? 1 : 0);
    }
}
