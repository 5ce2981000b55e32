// JMX admin for the nfmp_client dev/test broker (ActiveMQ Classic 5.17, which ships no web console).
// Run by nfmp_client.testing.ActiveMQAdmin and by `scripts/broker admin ...`; by hand (Java 17 source-file mode):
//
//   java -cp /usr/share/java/geronimo-jms_1.1_spec.jar AmqAdmin.java [--url JMX_URL] COMMAND
//
// Commands:
//   list                      one line per client connection and per durable topic subscription
//   close CLIENT_ID           stop the broker-side connection(s) with this client-id (the client sees a drop)
//   rmsub CLIENT_ID SUBNAME   destroy an inactive durable subscription (refused while it is attached)
//   evict CLIENT_ID SUBNAME   stop the client-id's connection(s), then destroy the subscription, trying again
//                             (stopping again) for up to 10 s while it is still attached: what a server that
//                             removes a subscription at once does, even for a client that keeps reconnecting
//   closeall EXCEPT_CLIENT_ID stop every client connection but those with this client-id; prints the count
//   rmsuball EXCEPT_CLIENT_ID destroy every inactive durable subscription but this client-id's; prints the
//                             count (attached ones are left: close their connections first)
//
// Exit codes: 0 ok, 1 the broker refused or found nothing, 2 usage error, 3 cannot reach JMX.
// The geronimo-jms jar on -cp lets a javax.jms.JMSException cause (e.g. "Durable consumer is in use") be
// deserialised and shown instead of a ClassNotFoundException.

import java.io.IOException;
import java.util.ArrayList;
import java.util.Arrays;
import java.util.List;
import java.util.Set;
import javax.management.InstanceNotFoundException;
import javax.management.MBeanException;
import javax.management.MBeanServerConnection;
import javax.management.ObjectName;
import javax.management.remote.JMXConnector;
import javax.management.remote.JMXConnectorFactory;
import javax.management.remote.JMXServiceURL;

public class AmqAdmin {
    static final String DEFAULT_URL = "service:jmx:rmi:///jndi/rmi://127.0.0.1:11099/jmxrmi";
    static final String USAGE =
            "usage: AmqAdmin [--url JMX_URL] list | close CLIENT_ID | rmsub CLIENT_ID SUBNAME"
                    + " | evict CLIENT_ID SUBNAME"
                    + " | closeall EXCEPT_CLIENT_ID | rmsuball EXCEPT_CLIENT_ID";

    /** An expected failure: printed as one line on stderr, no stack trace. */
    static final class Failure extends Exception {
        private static final long serialVersionUID = 1L;
        final int code;

        Failure(int code, String message) {
            super(message);
            this.code = code;
        }
    }

    public static void main(String[] argv) {
        try {
            run(new ArrayList<>(Arrays.asList(argv)));
        } catch (Failure f) {
            System.err.println("AmqAdmin: " + f.getMessage());
            System.exit(f.code);
        }
    }

    static void run(List<String> args) throws Failure {
        String url = DEFAULT_URL;
        if (args.size() >= 2 && args.get(0).equals("--url")) {
            url = args.get(1);
            args = args.subList(2, args.size());
        }
        if (args.isEmpty()) throw new Failure(2, USAGE);
        String cmd = args.get(0);
        int wanted = switch (cmd) {
            case "list" -> 1;
            case "close" -> 2;
            case "rmsub", "evict" -> 3;
            case "closeall", "rmsuball" -> 2;
            default -> throw new Failure(2, "unknown command '" + cmd + "'; " + USAGE);
        };
        if (args.size() != wanted) throw new Failure(2, "wrong number of arguments; " + USAGE);

        JMXServiceURL serviceUrl;
        try {
            serviceUrl = new JMXServiceURL(url);
        } catch (IOException e) {
            throw new Failure(2, "bad JMX URL '" + url + "': " + e.getMessage());
        }
        JMXConnector jc;
        try {
            jc = JMXConnectorFactory.connect(serviceUrl);
        } catch (IOException | SecurityException e) {
            throw new Failure(3, "cannot connect to JMX at " + url + " (is the broker running?): "
                    + rootCause(e));
        }
        try (jc) {
            MBeanServerConnection s = jc.getMBeanServerConnection();
            ObjectName broker = findBroker(s);
            switch (cmd) {
                case "list" -> list(s, broker);
                case "close" -> close(s, broker, args.get(1));
                case "closeall" -> closeAll(s, broker, args.get(1));
                case "rmsuball" -> rmsubAll(s, broker, args.get(1));
                case "evict" -> evict(s, broker, args.get(1), args.get(2));
                default -> rmsub(s, broker, args.get(1), args.get(2));
            }
        } catch (Failure f) {
            throw f;
        } catch (IOException e) {
            throw new Failure(3, "JMX connection to " + url + " failed: " + rootCause(e));
        } catch (Exception e) {
            throw new Failure(1, rootCause(e));
        }
    }

    static ObjectName findBroker(MBeanServerConnection s) throws Exception {
        ObjectName pattern = new ObjectName("org.apache.activemq:type=Broker,brokerName=*");
        Set<ObjectName> brokers = s.queryNames(pattern, null);
        if (brokers.isEmpty()) throw new Failure(1, "no ActiveMQ broker MBean (still starting?)");
        return brokers.iterator().next();
    }

    static Set<ObjectName> connections(MBeanServerConnection s, ObjectName broker) throws Exception {
        return s.queryNames(new ObjectName("org.apache.activemq:type=Broker,brokerName="
                + broker.getKeyProperty("brokerName") + ",connector=clientConnectors,connectorName=*"
                + ",connectionViewType=clientId,connectionName=*"), null);
    }

    /** Active and inactive durable topic subscriptions. */
    static List<ObjectName> durables(MBeanServerConnection s, ObjectName broker) throws Exception {
        List<ObjectName> out = new ArrayList<>();
        for (String attr : new String[] {"DurableTopicSubscribers", "InactiveDurableTopicSubscribers"})
            out.addAll(Arrays.asList((ObjectName[]) s.getAttribute(broker, attr)));
        return out;
    }

    // A connection or subscription can go away between the query and the attribute reads: skip it then.
    static void list(MBeanServerConnection s, ObjectName broker) throws Exception {
        for (ObjectName n : connections(s, broker)) {
            try {
                System.out.printf("conn clientId=%s remote=%s connector=%s%n", s.getAttribute(n, "ClientId"),
                        s.getAttribute(n, "RemoteAddress"), n.getKeyProperty("connectorName"));
            } catch (InstanceNotFoundException gone) {
                // closed meanwhile
            }
        }
        for (ObjectName n : durables(s, broker)) {
            try {
                System.out.printf("durable clientId=%s sub=%s topic=%s active=%s pending=%s selector=%s%n",
                        s.getAttribute(n, "ClientId"), s.getAttribute(n, "SubscriptionName"),
                        s.getAttribute(n, "DestinationName"), s.getAttribute(n, "Active"),
                        s.getAttribute(n, "PendingQueueSize"), s.getAttribute(n, "Selector"));
            } catch (InstanceNotFoundException gone) {
                // removed, or re-registered as active/inactive, meanwhile
            }
        }
    }

    /** Stop the broker-side connections of clientId; return how many. */
    static int stop(MBeanServerConnection s, ObjectName broker, String clientId) throws Exception {
        int closed = 0;
        for (ObjectName n : connections(s, broker)) {
            try {
                if (clientId.equals(s.getAttribute(n, "ClientId"))) {
                    s.invoke(n, "stop", null, null);
                    closed++;
                }
            } catch (InstanceNotFoundException gone) {
                // closed meanwhile
            }
        }
        return closed;
    }

    static void close(MBeanServerConnection s, ObjectName broker, String clientId) throws Exception {
        int closed = stop(s, broker, clientId);
        if (closed == 0) throw new Failure(1, "no connection with clientId=" + clientId);
        System.out.println("closed " + closed + " connection(s) of clientId=" + clientId);
    }

    static void closeAll(MBeanServerConnection s, ObjectName broker, String except) throws Exception {
        int closed = 0;
        for (ObjectName n : connections(s, broker)) {
            try {
                if (!except.equals(s.getAttribute(n, "ClientId"))) {
                    s.invoke(n, "stop", null, null);
                    closed++;
                }
            } catch (InstanceNotFoundException gone) {
                // closed meanwhile
            }
        }
        System.out.println("closed " + closed);
    }

    static void rmsubAll(MBeanServerConnection s, ObjectName broker, String except) throws Exception {
        int removed = 0;
        for (ObjectName n : Arrays.asList((ObjectName[]) s.getAttribute(broker, "InactiveDurableTopicSubscribers"))) {
            try {
                String clientId = (String) s.getAttribute(n, "ClientId");
                if (except.equals(clientId)) continue;
                s.invoke(broker, "destroyDurableSubscriber",
                        new Object[] {clientId, s.getAttribute(n, "SubscriptionName")},
                        new String[] {"java.lang.String", "java.lang.String"});
                removed++;
            } catch (InstanceNotFoundException gone) {
                // removed meanwhile
            } catch (MBeanException inUse) {
                // re-attached meanwhile: left, as the command says
            }
        }
        System.out.println("removed " + removed);
    }

    static void rmsub(MBeanServerConnection s, ObjectName broker, String clientId, String sub)
            throws Exception {
        boolean found = false;
        for (ObjectName n : durables(s, broker)) {
            try {
                found |= clientId.equals(s.getAttribute(n, "ClientId"))
                        && sub.equals(s.getAttribute(n, "SubscriptionName"));
            } catch (InstanceNotFoundException gone) {
                // removed meanwhile
            }
        }
        if (!found) throw new Failure(1, "no durable subscription clientId=" + clientId + " sub=" + sub);
        try {
            s.invoke(broker, "destroyDurableSubscriber", new Object[] {clientId, sub},
                    new String[] {"java.lang.String", "java.lang.String"});
        } catch (MBeanException e) {
            throw new Failure(1, "cannot remove clientId=" + clientId + " sub=" + sub + ": " + rootCause(e)
                    + " (close the client's connection first)");
        }
        System.out.println("removed durable subscription clientId=" + clientId + " sub=" + sub);
    }

    static void evict(MBeanServerConnection s, ObjectName broker, String clientId, String sub)
            throws Exception {
        long deadline = System.nanoTime() + 10_000_000_000L;
        String[] signature = {"java.lang.String", "java.lang.String"};
        int closed = 0;
        while (true) {
            closed += stop(s, broker, clientId);
            // The broker frees the subscription a moment after the connection stops, and the client may be
            // back a moment later: try in a tight loop until one of the two happens (then stop it again).
            while (true) {
                try {
                    s.invoke(broker, "destroyDurableSubscriber", new Object[] {clientId, sub}, signature);
                    System.out.println("removed durable subscription clientId=" + clientId + " sub=" + sub
                            + "; closed " + closed + " connection(s)");
                    return;
                } catch (MBeanException refused) {
                    String why = rootCause(refused);
                    if (why.contains("No durable subscription exists")) {
                        System.out.println("no durable subscription clientId=" + clientId + " sub=" + sub
                                + " (gone already); closed " + closed + " connection(s)");
                        return;
                    }
                    if (System.nanoTime() > deadline) {
                        throw new Failure(1, "cannot remove clientId=" + clientId + " sub=" + sub + ": " + why
                                + " (the client kept re-attaching for 10 s)");
                    }
                    if (attached(s, broker, clientId)) break;
                    Thread.sleep(2);
                }
            }
        }
    }

    /** Whether a connection with clientId is open. */
    static boolean attached(MBeanServerConnection s, ObjectName broker, String clientId) throws Exception {
        for (ObjectName n : connections(s, broker)) {
            try {
                if (clientId.equals(s.getAttribute(n, "ClientId"))) return true;
            } catch (InstanceNotFoundException gone) {
                // closed meanwhile
            }
        }
        return false;
    }

    static String rootCause(Throwable t) {
        Throwable c = t;
        while (c.getCause() != null && c.getCause() != c) c = c.getCause();
        String msg = c.getMessage();
        return c.getClass().getName() + (msg == null ? "" : ": " + msg);
    }
}
