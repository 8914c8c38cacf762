package dev.flinksched.listener;

import org.apache.flink.configuration.ConfigOption;
import org.apache.flink.configuration.ConfigOptions;
import org.apache.flink.configuration.Configuration;

import java.time.Duration;
import java.util.Objects;

/** The listener's settings, read from Flink's configuration (keys under {@code flinksched.push.}). */
final class PushSettings {
    static final ConfigOption<String> QUORUM =
            ConfigOptions.key("flinksched.push.zookeeper.quorum").stringType().noDefaultValue()
                    .withDescription("ZooKeeper hosts of the flinksched installation (host:port,...). "
                            + "Without it the listener stays idle.");
    static final ConfigOption<String> ROOT =
            ConfigOptions.key("flinksched.push.zookeeper.root").stringType().defaultValue("/flinksched")
                    .withDescription("The installation's ZooKeeper root (flinksched --root).");
    static final ConfigOption<String> AUTH =
            ConfigOptions.key("flinksched.push.zookeeper.auth").stringType().noDefaultValue()
                    .withDescription("USER:PASSWORD digest credentials (flinksched --zk-auth).");
    static final ConfigOption<String> CLUSTER =
            ConfigOptions.key("flinksched.push.cluster").stringType().defaultValue("default")
                    .withDescription("The name of this cluster's FlinkCluster in flinksched's configs.");
    static final ConfigOption<Integer> QUEUE =
            ConfigOptions.key("flinksched.push.queue-capacity").intType().defaultValue(1024)
                    .withDescription("Events waiting to be sent; beyond it they are dropped and counted.");
    static final ConfigOption<Duration> HEARTBEAT =
            ConfigOptions.key("flinksched.push.heartbeat-interval").durationType()
                    .defaultValue(Duration.ofSeconds(5))
                    .withDescription("How often the listener tells flinksched it is alive.");
    static final ConfigOption<Duration> SESSION_TIMEOUT =
            ConfigOptions.key("flinksched.push.zookeeper.session-timeout").durationType()
                    .defaultValue(Duration.ofSeconds(10));

    final String quorum;
    final String root;
    final String auth;
    final String cluster;
    final int queueCapacity;
    final Duration heartbeat;
    final Duration sessionTimeout;

    private PushSettings(Configuration conf) {
        this.quorum = conf.get(QUORUM);
        String configuredRoot = conf.get(ROOT).trim();
        while (configuredRoot.length() > 1 && configuredRoot.endsWith("/")) {
            configuredRoot = configuredRoot.substring(0, configuredRoot.length() - 1);
        }
        this.root = configuredRoot.startsWith("/") ? configuredRoot : "/" + configuredRoot;
        this.auth = conf.get(AUTH);
        this.cluster = conf.get(CLUSTER);
        this.queueCapacity = Math.max(1, conf.get(QUEUE));
        this.heartbeat = conf.get(HEARTBEAT);
        this.sessionTimeout = conf.get(SESSION_TIMEOUT);
    }

    /** The settings, or null when no ZooKeeper is configured (the listener does nothing). */
    static PushSettings of(Configuration conf) {
        String quorum = conf.get(QUORUM);
        if (quorum == null || quorum.isBlank()) {
            return null;
        }
        return new PushSettings(conf);
    }

    /** One channel serves every job whose settings name the same destination. */
    String key() {
        return quorum + "|" + root + "|" + cluster + "|" + Objects.toString(auth, "");
    }

    @Override
    public String toString() {
        return "zookeeper " + quorum + ", root " + root + ", cluster " + cluster
                + ", queue " + queueCapacity + ", heartbeat " + heartbeat.toMillis() + " ms";
    }
}
