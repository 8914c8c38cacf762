package dev.flinksched.listener;

import org.apache.flink.core.execution.JobStatusChangedListener;
import org.apache.flink.core.execution.JobStatusChangedListenerFactory;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.util.concurrent.ConcurrentHashMap;
import java.util.concurrent.ConcurrentMap;

/**
 * Makes the listener Flink calls on every job status change. Configured on the cluster with
 * {@code execution.job-status-changed-listeners: dev.flinksched.listener.StatusPushFactory}.
 *
 * <p>Flink makes one listener per execution graph (each job, each JobManager failover); they
 * share one channel per destination, so a cluster keeps one ZooKeeper session however many
 * jobs it runs.
 */
public class StatusPushFactory implements JobStatusChangedListenerFactory {
    private static final Logger LOG = LoggerFactory.getLogger(StatusPushFactory.class);
    private static final ConcurrentMap<String, PushChannel> CHANNELS = new ConcurrentHashMap<>();
    private static final JobStatusChangedListener IDLE = event -> { };
    private static volatile boolean idleLogged;

    @Override
    public JobStatusChangedListener createListener(Context context) {
        PushSettings settings;
        try {
            settings = PushSettings.of(context.getConfiguration());
        } catch (RuntimeException e) {
            LOG.warn("flinksched status push: unusable settings, not pushing: {}", e.toString());
            return IDLE;
        }
        if (settings == null) {
            if (!idleLogged) {
                idleLogged = true;
                LOG.warn("flinksched status push: {} is not set, not pushing",
                        PushSettings.QUORUM.key());
            }
            return IDLE;
        }
        PushChannel channel = CHANNELS.computeIfAbsent(settings.key(), key -> {
            LOG.info("flinksched status push: {}", settings);
            return PushChannel.start(settings);
        });
        return new StatusPush(channel);
    }
}
