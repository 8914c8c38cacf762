package dev.flinksched.listener;

import org.apache.flink.runtime.util.EnvironmentInformation;
import org.apache.flink.shaded.zookeeper3.org.apache.zookeeper.CreateMode;
import org.apache.flink.shaded.zookeeper3.org.apache.zookeeper.KeeperException;
import org.apache.flink.shaded.zookeeper3.org.apache.zookeeper.ZooDefs;
import org.apache.flink.shaded.zookeeper3.org.apache.zookeeper.ZooKeeper;
import org.apache.flink.shaded.zookeeper3.org.apache.zookeeper.data.ACL;

import org.slf4j.Logger;
import org.slf4j.LoggerFactory;

import java.nio.charset.StandardCharsets;
import java.util.List;
import java.util.concurrent.ArrayBlockingQueue;
import java.util.concurrent.BlockingQueue;
import java.util.concurrent.TimeUnit;
import java.util.concurrent.atomic.AtomicLong;

/**
 * Sends events to flinksched's ZooKeeper from one daemon thread.
 *
 * <p>An event goes to {@code <root>/events/<prefix>}, the node a flinksched worker creates
 * and watches for the job with that id prefix; a job flinksched does not run has no such node
 * and its events are only counted. A full queue drops the event (counted, logged): the
 * JobManager never waits for flinksched, and flinksched's polling covers what is dropped.
 * Every heartbeat interval the thread writes its counters to the ephemeral node
 * {@code <root>/listeners/<cluster>}, which tells flinksched that this cluster pushes.
 */
final class PushChannel implements Runnable {
    private static final Logger LOG = LoggerFactory.getLogger(PushChannel.class);
    private static final long RECONNECT_PAUSE_MS = 1000;

    private final PushSettings settings;
    private final BlockingQueue<PushEvent> queue;
    private final AtomicLong sent = new AtomicLong();
    private final AtomicLong dropped = new AtomicLong();
    private final AtomicLong ignored = new AtomicLong();
    private final AtomicLong failed = new AtomicLong();
    private final AtomicLong errors = new AtomicLong();
    private final String eventsPath;
    private final String heartbeatPath;
    private ZooKeeper zk;
    private long sequence;
    private long lastProblemLog;

    private PushChannel(PushSettings settings) {
        this.settings = settings;
        this.queue = new ArrayBlockingQueue<>(settings.queueCapacity);
        String root = settings.root.equals("/") ? "" : settings.root;
        this.eventsPath = root + "/events/";
        this.heartbeatPath = root + "/listeners/" + settings.cluster;
    }

    static PushChannel start(PushSettings settings) {
        PushChannel channel = new PushChannel(settings);
        Thread thread = new Thread(channel, "flinksched-status-push");
        thread.setDaemon(true);
        thread.start();
        return channel;
    }

    /** From the JobManager's main thread: never blocks. */
    void offer(PushEvent event) {
        if (!queue.offer(event)) {
            long count = dropped.incrementAndGet();
            if (Long.bitCount(count) == 1) { // 1, 2, 4, 8, ...: a burst logs a few lines
                LOG.warn("flinksched status push: queue full ({} events), {} dropped so far",
                        settings.queueCapacity, count);
            }
        }
    }

    void failed(Throwable error) {
        long count = errors.incrementAndGet();
        if (Long.bitCount(count) == 1) {
            LOG.warn("flinksched status push: an event could not be read ({} so far)", count, error);
        }
    }

    @Override
    public void run() {
        long heartbeatMs = Math.max(100, settings.heartbeat.toMillis());
        long nextHeartbeat = 0;
        while (true) {
            try {
                long wait = Math.max(0, nextHeartbeat - System.currentTimeMillis());
                PushEvent event = queue.poll(wait, TimeUnit.MILLISECONDS);
                ZooKeeper client = client();
                if (event != null) {
                    send(client, event);
                }
                if (System.currentTimeMillis() >= nextHeartbeat) {
                    heartbeat(client, heartbeatMs);
                    nextHeartbeat = System.currentTimeMillis() + heartbeatMs;
                }
            } catch (InterruptedException e) {
                Thread.currentThread().interrupt();
                return;
            } catch (Exception e) {
                problem("ZooKeeper at " + settings.quorum + " failed: " + e);
                closeClient();
                try {
                    Thread.sleep(RECONNECT_PAUSE_MS);
                } catch (InterruptedException interrupted) {
                    return;
                }
            }
        }
    }

    private void send(ZooKeeper client, PushEvent event) throws InterruptedException {
        try {
            client.setData(eventsPath + event.prefix(), event.json(settings.cluster, ++sequence), -1);
            sent.incrementAndGet();
        } catch (KeeperException.NoNodeException e) {
            ignored.incrementAndGet(); // not a job flinksched runs
        } catch (KeeperException e) {
            failed.incrementAndGet();
            problem("event of job " + event.jobId + " not sent: " + e.getMessage());
            if (e.code() == KeeperException.Code.SESSIONEXPIRED) {
                closeClient();
            }
        }
    }

    private void heartbeat(ZooKeeper client, long intervalMs) throws InterruptedException {
        byte[] data = ("{\"cluster\":" + PushEvent.quote(settings.cluster)
                + ",\"time\":" + System.currentTimeMillis() + ",\"interval\":" + intervalMs
                + ",\"flinkVersion\":" + PushEvent.quote(EnvironmentInformation.getVersion())
                + ",\"queueCapacity\":" + settings.queueCapacity
                + ",\"sent\":" + sent.get() + ",\"dropped\":" + dropped.get()
                + ",\"ignored\":" + ignored.get() + ",\"failed\":" + failed.get()
                + ",\"errors\":" + errors.get() + "}").getBytes(StandardCharsets.UTF_8);
        try {
            try {
                client.setData(heartbeatPath, data, -1);
            } catch (KeeperException.NoNodeException e) {
                client.create(heartbeatPath, data, acl(), CreateMode.EPHEMERAL);
            }
        } catch (KeeperException.NoNodeException e) {
            problem(heartbeatPath + " cannot be made: is " + settings.root
                    + " a flinksched root on " + settings.quorum + "?");
        } catch (KeeperException e) {
            problem("heartbeat not written: " + e.getMessage());
            if (e.code() == KeeperException.Code.SESSIONEXPIRED) {
                closeClient();
            }
        }
    }

    private List<ACL> acl() {
        return settings.auth == null ? ZooDefs.Ids.OPEN_ACL_UNSAFE : ZooDefs.Ids.CREATOR_ALL_ACL;
    }

    private ZooKeeper client() throws Exception {
        if (zk == null || !zk.getState().isAlive()) {
            closeClient();
            zk = new ZooKeeper(settings.quorum, (int) settings.sessionTimeout.toMillis(), event -> { });
            if (settings.auth != null) {
                zk.addAuthInfo("digest", settings.auth.getBytes(StandardCharsets.UTF_8));
            }
        }
        return zk;
    }

    private void closeClient() {
        if (zk != null) {
            try {
                zk.close();
            } catch (Exception e) {
                LOG.debug("closing the ZooKeeper client", e);
            }
            zk = null;
        }
    }

    /** At most one line every 30 s: a ZooKeeper outage must not flood the JobManager's log. */
    private void problem(String message) {
        long now = System.currentTimeMillis();
        if (now - lastProblemLog >= 30_000) {
            lastProblemLog = now;
            LOG.warn("flinksched status push: {}", message);
        }
    }
}
