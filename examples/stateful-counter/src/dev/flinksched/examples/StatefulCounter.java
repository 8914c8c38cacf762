package dev.flinksched.examples;

import java.io.File;
import java.util.HashMap;
import java.util.Map;

import org.apache.flink.api.common.eventtime.WatermarkStrategy;
import org.apache.flink.api.common.functions.OpenContext;
import org.apache.flink.api.common.state.CheckpointListener;
import org.apache.flink.api.common.state.ValueState;
import org.apache.flink.api.common.state.ValueStateDescriptor;
import org.apache.flink.api.common.typeinfo.Types;
import org.apache.flink.api.connector.source.util.ratelimit.RateLimiterStrategy;
import org.apache.flink.connector.datagen.source.DataGeneratorSource;
import org.apache.flink.streaming.api.environment.StreamExecutionEnvironment;
import org.apache.flink.streaming.api.functions.KeyedProcessFunction;
import org.apache.flink.streaming.api.functions.sink.v2.DiscardingSink;
import org.apache.flink.util.Collector;

/**
 * The example and test job of flinksched: a rate-limited generator, a keyed counter kept in
 * Flink state, and failures that can be injected from outside.
 *
 * <p>Arguments: --rate N (records per second), --keys K, --fail-marker PATH (fail once when the
 * file exists, deleting it), --fail-at-checkpoint-marker PATH (fail once when the file exists,
 * in the notification that a checkpoint completed: the failed attempt's newest checkpoint is
 * then the one just completed, with no later one in flight), --fail-always-marker PATH (fail on
 * every record while it exists),
 * --operator-uid UID (the counter's uid: another one is a program whose state cannot be mapped
 * from an earlier checkpoint without allowNonRestoredState).
 *
 * <p>It compiles against Flink 1.20 and 2.x alike, so it parses its own arguments (Flink's
 * ParameterTool moved package in 2.0).
 */
public class StatefulCounter {

    public static void main(String[] args) throws Exception {
        Map<String, String> params = options(args);
        double rate = Double.parseDouble(params.getOrDefault("rate", "20"));
        long keys = Long.parseLong(params.getOrDefault("keys", "8"));
        String failMarker = params.getOrDefault("fail-marker", "");
        String failAlwaysMarker = params.getOrDefault("fail-always-marker", "");
        String failAtCheckpointMarker = params.getOrDefault("fail-at-checkpoint-marker", "");

        StreamExecutionEnvironment env = StreamExecutionEnvironment.getExecutionEnvironment();
        DataGeneratorSource<Long> source =
                new DataGeneratorSource<>(
                        index -> index, Long.MAX_VALUE, RateLimiterStrategy.perSecond(rate), Types.LONG);

        env.fromSource(source, WatermarkStrategy.noWatermarks(), "generator")
                .keyBy(value -> value % keys)
                .process(new CountPerKey(failMarker, failAlwaysMarker, failAtCheckpointMarker))
                .name("count-per-key")
                .uid(params.getOrDefault("operator-uid", "count-per-key"))
                .sinkTo(new DiscardingSink<>())
                .name("discard");

        env.execute(params.getOrDefault("name", "flinksched-stateful-counter"));
    }

    /** "--key value" pairs; a key without a value (or followed by another key) is "true". */
    static Map<String, String> options(String[] args) {
        Map<String, String> found = new HashMap<>();
        for (int i = 0; i < args.length; i++) {
            if (!args[i].startsWith("--")) {
                throw new IllegalArgumentException("unexpected argument " + args[i]);
            }
            String key = args[i].substring(2);
            boolean hasValue = i + 1 < args.length && !args[i + 1].startsWith("--");
            found.put(key, hasValue ? args[++i] : "true");
        }
        return found;
    }

    /** Counts records per key in keyed state; throws when a failure marker is present. */
    public static class CountPerKey extends KeyedProcessFunction<Long, Long, String>
            implements CheckpointListener {
        private final String failMarker;
        private final String failAlwaysMarker;
        private final String failAtCheckpointMarker;
        private transient ValueState<Long> count;
        private transient long lastMarkerCheck;

        public CountPerKey(String failMarker, String failAlwaysMarker,
                           String failAtCheckpointMarker) {
            this.failMarker = failMarker;
            this.failAlwaysMarker = failAlwaysMarker;
            this.failAtCheckpointMarker = failAtCheckpointMarker;
        }

        @Override
        public void notifyCheckpointComplete(long checkpointId) {
            if (!failAtCheckpointMarker.isEmpty()) {
                File marker = new File(failAtCheckpointMarker);
                if (marker.exists() && marker.delete()) {
                    throw new IllegalStateException("injected failure after checkpoint "
                            + checkpointId + ": consumed " + failAtCheckpointMarker);
                }
            }
        }

        @Override
        public void open(OpenContext context) {
            count = getRuntimeContext().getState(new ValueStateDescriptor<>("count", Types.LONG));
        }

        @Override
        public void processElement(Long value, Context ctx, Collector<String> out) throws Exception {
            long now = System.currentTimeMillis();
            if (now - lastMarkerCheck >= 100) {
                lastMarkerCheck = now;
                failIfMarked();
            }
            Long current = count.value();
            long next = current == null ? 1 : current + 1;
            count.update(next);
            out.collect(ctx.getCurrentKey() + "=" + next);
        }

        private void failIfMarked() {
            if (!failAlwaysMarker.isEmpty() && new File(failAlwaysMarker).exists()) {
                throw new IllegalStateException("injected failure: " + failAlwaysMarker + " exists");
            }
            if (!failMarker.isEmpty()) {
                File marker = new File(failMarker);
                if (marker.exists() && marker.delete()) {
                    throw new IllegalStateException("injected failure: consumed " + failMarker);
                }
            }
        }
    }
}
