/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <errno.h>
#include <glib-unix.h>
#include <glib/gi18n.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/resource.h>

#include "codechat-accounts.h"
#include "codechat-cluster.h"
#include "codechat-config.h"
#include "codechat-dbus.h"
#include "codechat-hub.h"
#include "codechat-log.h"
#include "codechat-notify.h"
#include "codechat-server.h"
#include "codechat-store-redis.h"
#include "codechat-store.h"
#include "codechat-version.h"

typedef struct {
	GMainLoop *loop;	/* (owned) */
	CodechatHub *hub;	/* (owned) */
	CodechatServer *server; /* (owned) */
	guint drain_timeout_id; /* GSource id, 0 if none */
	gint exit_status;
	CodechatDbusService *dbus; /* (owned) (nullable) */
	guint owner_id;		   /* g_bus_own_name() id, 0 if none */
	const gchar *bus_name;	   /* "session" or "system", for messages */
	gboolean name_acquired;
	CodechatDaemonSettings *settings;    /* (unowned) main()'s, as running */
	const CodechatDaemonSettings *flags; /* (unowned) the command line's, unresolved */
	const gchar *config_path;	     /* (unowned) (nullable) --config */
	CodechatNotifier *notifier;	     /* (owned) (nullable) NULL when notify is off */
} Daemon;

static gboolean
drain_timeout_cb(gpointer user_data)
{
	Daemon *daemon = user_data;

	daemon->drain_timeout_id = 0;
	g_message("%u sessions did not close in time; exiting anyway",
		  codechat_hub_get_n_connections(daemon->hub));
	g_main_loop_quit(daemon->loop);
	return G_SOURCE_REMOVE;
}

static void
store_commit_cb(gdouble seconds, gpointer user_data)
{
	codechat_metrics_observe_commit(user_data, seconds);
}

static void
hub_drained_cb(CodechatHub *hub, gpointer user_data)
{
	Daemon *daemon = user_data;
	g_main_loop_quit(daemon->loop);
}

static gboolean
quit_signal_cb(gpointer user_data)
{
	Daemon *daemon = user_data;

	if (daemon->drain_timeout_id != 0)
		return G_SOURCE_CONTINUE;
	g_message("shutting down: closing %u sessions",
		  codechat_hub_get_n_connections(daemon->hub));
	daemon->drain_timeout_id = g_timeout_add_seconds(3, drain_timeout_cb, daemon);
	codechat_hub_shutdown(daemon->hub);
	return G_SOURCE_CONTINUE;
}

static void
begin_shutdown(Daemon *daemon)
{
	quit_signal_cb(daemon);
}

/* the sender of D-Bus Send when the caller names none */
static gchar *
own_nick(const CodechatDaemonSettings *settings)
{
	if (settings->nick != NULL)
		return g_strdup(settings->nick);
	if (codechat_validate_nick(g_get_user_name(), NULL))
		return g_strdup(g_get_user_name());
	return g_strdup("codechatd");
}

/* notify is on: the journal says once why nothing shows */
static void
notifier_unavailable_cb(CodechatNotifier *notifier, const gchar *reason, gpointer user_data)
{
	g_warning("desktop notifications are unavailable: %s", reason);
}

/* desktop notifications of the messages posted, as the notify setting
 * says; at start and again when a reload changes notify or nick */
static void
daemon_update_notifier(Daemon *daemon)
{
	CodechatNotifyMode mode = CODECHAT_NOTIFY_OFF;

	if (daemon->notifier != NULL) {
		g_signal_handlers_disconnect_by_data(daemon->hub, daemon->notifier);
		g_clear_object(&daemon->notifier);
	}
	codechat_notify_mode_from_string(daemon->settings->notify, &mode);
	if (mode == CODECHAT_NOTIFY_OFF)
		return;
	daemon->notifier = codechat_notifier_new(
	    mode,
	    daemon->settings->nick != NULL ? daemon->settings->nick : g_get_user_name());
	g_signal_connect(daemon->notifier,
			 "unavailable",
			 G_CALLBACK(notifier_unavailable_cb),
			 NULL);
	g_signal_connect_object(daemon->hub,
				"message-posted",
				G_CALLBACK(codechat_notifier_handle),
				daemon->notifier,
				G_CONNECT_SWAPPED);
}

/* the settings that take a restart, with listen: the store, the
 * certificate, the bus, the log writer and what every handshake offers
 * are set up once */
static const struct {
	const gchar *name;
	goffset offset;
} restart_strings[] = {
    {"data-dir", G_STRUCT_OFFSET(CodechatDaemonSettings, data_dir)},
    {"sync", G_STRUCT_OFFSET(CodechatDaemonSettings, sync)},
    {"tls-cert", G_STRUCT_OFFSET(CodechatDaemonSettings, tls_cert)},
    {"tls-key", G_STRUCT_OFFSET(CodechatDaemonSettings, tls_key)},
    {"redis", G_STRUCT_OFFSET(CodechatDaemonSettings, redis)},
    {"bus", G_STRUCT_OFFSET(CodechatDaemonSettings, bus)},
    {"log-format", G_STRUCT_OFFSET(CodechatDaemonSettings, log_format)},
};

static void
note_change(GString *changes, const gchar *name, const gchar *old_value, const gchar *new_value)
{
	if (g_strcmp0(old_value, new_value) == 0)
		return;
	if (changes->len > 0)
		g_string_append(changes, ", ");
	g_string_append_printf(changes,
			       "%s %s → %s",
			       name,
			       old_value != NULL ? old_value : "(none)",
			       new_value != NULL ? new_value : "(none)");
}

static void
note_number(GString *changes, const gchar *name, guint64 old_value, guint64 new_value)
{
	g_autofree gchar *old_text = g_strdup_printf("%" G_GUINT64_FORMAT, old_value);
	g_autofree gchar *new_text = g_strdup_printf("%" G_GUINT64_FORMAT, new_value);

	note_change(changes, name, old_text, new_text);
}

static gchar *
origins_text(GStrv origins)
{
	return origins != NULL && origins[0] != NULL ? g_strjoinv(";", origins) : NULL;
}

/*
 * SIGHUP: the config file is read again from where it was found at start,
 * under the same flags and CODECHATD_* variables, and checked in full
 * before anything is applied: a file that does not parse or holds a bad
 * value leaves every setting as it was.  The limits, the Origin
 * allow-list, notify and nick apply at once, to new connections and
 * messages; no session is dropped.  A changed setting that takes a
 * restart is named in a warning and left as it runs.
 */
static void
daemon_reload(Daemon *daemon)
{
	CodechatDaemonSettings *running = daemon->settings;
	g_auto(CodechatDaemonSettings) next = {0};
	g_autoptr(GKeyFile) file = NULL;
	g_autofree gchar *file_path = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GString) changes = g_string_new(NULL);
	g_autofree gchar *old_origins = origins_text(running->allowed_origins);
	g_autofree gchar *new_origins = NULL;
	g_autofree gchar *listen_wanted = NULL;
	const gchar *shown_path;
	gboolean notifier_changed;
	gboolean nick_changed;

	codechat_daemon_settings_copy(&next, daemon->flags);
	if (!codechat_daemon_config_load(daemon->config_path, &file, &file_path, &error) ||
	    !codechat_daemon_settings_resolve_paths(&next, file, file_path, &error)) {
		g_warning("not reloading the config, the running settings stay: %s",
			  error->message);
		return;
	}
	/* the defaults that depend on the address (max-connections-per-address)
	 * follow the one listened on, not one that takes a restart */
	listen_wanted = g_steal_pointer(&next.listen);
	next.listen = g_strdup(running->listen);
	if (!codechat_daemon_settings_resolve(&next, file, file_path, &error)) {
		g_warning("not reloading the config, the running settings stay: %s",
			  error->message);
		return;
	}
	shown_path = file_path != NULL ? file_path : "(no config file)";
	/* no bus in any layer: the one chosen at start */
	if (next.bus == NULL)
		next.bus = g_strdup(running->bus);

	if (g_strcmp0(listen_wanted, running->listen) != 0)
		g_warning("listen changed: restart codechatd to apply");
	for (gsize i = 0; i < G_N_ELEMENTS(restart_strings); i++) {
		gchar **old_value = &G_STRUCT_MEMBER(gchar *, running, restart_strings[i].offset);
		gchar **new_value = &G_STRUCT_MEMBER(gchar *, &next, restart_strings[i].offset);

		if (g_strcmp0(*old_value, *new_value) == 0)
			continue;
		g_warning("%s changed: restart codechatd to apply", restart_strings[i].name);
		g_free(*new_value);
		*new_value = g_strdup(*old_value);
	}
	if (next.store_history_max != running->store_history_max) {
		g_warning("history-max changed: restart codechatd to apply");
		next.store_history_max = running->store_history_max;
	}
	if (next.deflate != running->deflate) {
		g_warning("permessage-deflate changed: restart codechatd to apply");
		next.deflate = running->deflate;
	}
	if (next.allow_anonymous != running->allow_anonymous) {
		g_warning("allow-anonymous changed: restart codechatd to apply");
		next.allow_anonymous = running->allow_anonymous;
	}

	note_number(changes, "rate-limit", running->config.rate, next.config.rate);
	note_number(changes, "rate-burst", running->config.burst, next.config.burst);
	note_number(changes,
		    "hello-timeout",
		    running->config.hello_timeout,
		    next.config.hello_timeout);
	note_number(changes, "keepalive", running->config.keepalive, next.config.keepalive);
	note_number(changes,
		    "max-connections",
		    running->config.max_connections,
		    next.config.max_connections);
	note_number(changes,
		    "max-connections-per-address",
		    running->config.max_per_address,
		    next.config.max_per_address);
	note_number(changes,
		    "max-outbound-bytes",
		    running->config.max_outbound,
		    next.config.max_outbound);
	note_number(changes,
		    "handshake-timeout",
		    running->server_handshake_timeout,
		    next.server_handshake_timeout);
	note_number(changes,
		    "max-handshakes",
		    running->server_max_handshakes,
		    next.server_max_handshakes);
	new_origins = origins_text(next.allowed_origins);
	note_change(changes, "allow-origin", old_origins, new_origins);
	note_change(changes, "notify", running->notify, next.notify);
	note_change(changes, "nick", running->nick, next.nick);
	nick_changed = g_strcmp0(running->nick, next.nick) != 0;
	notifier_changed = nick_changed || g_strcmp0(running->notify, next.notify) != 0;

	codechat_hub_set_config(daemon->hub, &next.config);
	codechat_server_set_allowed_origins(daemon->server,
					    (const gchar *const *)next.allowed_origins);
	codechat_server_set_handshake_limits(daemon->server,
					     next.server_handshake_timeout,
					     next.server_max_handshakes);
	codechat_daemon_settings_clear(running);
	*running = next;
	memset(&next, 0, sizeof(next));
	if (notifier_changed)
		daemon_update_notifier(daemon);
	if (nick_changed && daemon->dbus != NULL) {
		g_autofree gchar *nick = own_nick(running);
		codechat_dbus_service_set_nick(daemon->dbus, nick);
	}
	g_log_structured(G_LOG_DOMAIN,
			 G_LOG_LEVEL_MESSAGE,
			 "CODECHAT_CONFIG",
			 shown_path,
			 "MESSAGE",
			 "reloaded %s: %s",
			 shown_path,
			 changes->len > 0 ? changes->str : "nothing changed");
}

static gboolean
reload_signal_cb(gpointer user_data)
{
	Daemon *daemon = user_data;

	/* shutting down: nothing left to reload for */
	if (daemon->drain_timeout_id == 0)
		daemon_reload(daemon);
	return G_SOURCE_CONTINUE;
}

static void
bus_acquired_cb(GDBusConnection *connection, const gchar *name, gpointer user_data)
{
	Daemon *daemon = user_data;
	g_autoptr(GError) error = NULL;

	if (!g_dbus_interface_skeleton_export(G_DBUS_INTERFACE_SKELETON(daemon->dbus),
					      connection,
					      CODECHAT_DBUS_PATH,
					      &error))
		g_warning("cannot export %s on the %s bus: %s",
			  CODECHAT_DBUS_PATH,
			  daemon->bus_name,
			  error->message);
}

static void
name_acquired_cb(GDBusConnection *connection, const gchar *name, gpointer user_data)
{
	Daemon *daemon = user_data;

	daemon->name_acquired = TRUE;
	g_message("serving %s on the %s bus", name, daemon->bus_name);
}

static void
name_lost_cb(GDBusConnection *connection, const gchar *name, gpointer user_data)
{
	Daemon *daemon = user_data;

	if (daemon->name_acquired) {
		/* another codechatd --replace took over: hand over cleanly */
		g_message("%s was taken over by another codechatd; exiting", name);
	} else if (connection == NULL) {
		g_printerr(_("codechatd: cannot connect to the %s bus (use --bus none to run "
			     "without D-Bus)\n"),
			   daemon->bus_name);
		daemon->exit_status = 1;
	} else {
		g_printerr(_("codechatd: %s is already owned on the %s bus: another codechatd is "
			     "running (--replace takes over from it)\n"),
			   name,
			   daemon->bus_name);
		daemon->exit_status = 1;
	}
	begin_shutdown(daemon);
}

/* "session" when the user has a session bus, else "none" */
static const gchar *
default_bus(void)
{
	const gchar *address = g_getenv("DBUS_SESSION_BUS_ADDRESS");
	g_autofree gchar *socket = NULL;

	if (address != NULL)
		return address[0] != '\0' ? "session" : "none";
	socket = g_build_filename(g_get_user_runtime_dir(), "bus", NULL);
	return g_file_test(socket, G_FILE_TEST_EXISTS) ? "session" : "none";
}

/* `codechatd user add|list|remove NICK`: 0 done, 1 error or bad usage */
static gint
run_user_command(const gchar *data_dir, gint argc, gchar **argv)
{
	g_autoptr(CodechatAccounts) accounts = codechat_accounts_new(data_dir);
	g_autoptr(GError) error = NULL;
	const gchar *command = argc > 2 ? argv[2] : NULL;

	if (g_strcmp0(command, "list") == 0 && argc == 3) {
		g_auto(GStrv) nicks = NULL;
		if (!codechat_accounts_load(accounts, &error)) {
			g_printerr("codechatd: %s\n", error->message);
			return 1;
		}
		nicks = codechat_accounts_list(accounts);
		for (guint i = 0; nicks[i] != NULL; i++)
			g_print("%s\n", nicks[i]);
		return 0;
	}
	if (g_strcmp0(command, "add") == 0 && argc == 4) {
		g_autofree gchar *token = codechat_accounts_add(accounts, argv[3], &error);
		if (token == NULL) {
			g_printerr(_("codechatd: cannot add %s: %s\n"), argv[3], error->message);
			return 1;
		}
		/* the token alone on stdout, for scripts; it is not kept */
		g_print("%s\n", token);
		g_printerr(_("codechatd: added %s; the token above is shown only this once\n"),
			   argv[3]);
		return 0;
	}
	if (g_strcmp0(command, "remove") == 0 && argc == 4) {
		if (!codechat_accounts_remove(accounts, argv[3], &error)) {
			g_printerr(_("codechatd: cannot remove %s: %s\n"), argv[3], error->message);
			return 1;
		}
		return 0;
	}
	g_printerr(_("Usage: codechatd [--data-dir DIR] user add|list|remove NICK\n"));
	return 1;
}

/* every connection is a descriptor: take the hard limit, not the soft one
 * (often 1024), so that a few thousand idle or half-open connections do
 * not keep other clients out */
static void
raise_fd_limit(void)
{
	struct rlimit limit;

	if (getrlimit(RLIMIT_NOFILE, &limit) != 0 || limit.rlim_cur >= limit.rlim_max)
		return;
	limit.rlim_cur = limit.rlim_max;
	if (setrlimit(RLIMIT_NOFILE, &limit) != 0)
		g_debug("cannot raise the descriptor limit: %s", g_strerror(errno));
}

/* CODECHATD_TEST_CLUSTER_TTL_MS and CODECHATD_TEST_CLUSTER_HEARTBEAT_MS,
 * in milliseconds, for tests only (tests/test-redis.c): a daemon that died
 * counts as dead within a test's patience.  Deliberately neither options
 * nor settings, and not documented for users. */
static guint
test_env_ms(const gchar *name, guint fallback)
{
	const gchar *value = g_getenv(name);
	guint64 ms;

	if (value == NULL || !g_ascii_string_to_unsigned(value, 10, 1, G_MAXUINT, &ms, NULL))
		return fallback;
	return (guint)ms;
}

/* joins the daemons on the same Redis and waits (at most 2 s) until their
 * state is loaded, so that the first hello is not refused as overloaded */
static CodechatCluster *
cluster_new(const gchar *url, GError **error)
{
	g_autoptr(CodechatCluster) cluster = NULL;
	guint ttl_ms = test_env_ms("CODECHATD_TEST_CLUSTER_TTL_MS", 0);
	guint heartbeat_ms = test_env_ms("CODECHATD_TEST_CLUSTER_HEARTBEAT_MS", 0);
	gint64 deadline = g_get_monotonic_time() + 2 * G_USEC_PER_SEC;

	if (ttl_ms > 0 || heartbeat_ms > 0) {
		if (ttl_ms == 0)
			ttl_ms = 10000;
		if (heartbeat_ms == 0 || heartbeat_ms >= ttl_ms)
			heartbeat_ms = MAX(ttl_ms / 5, 1);
		if (ttl_ms <= heartbeat_ms)
			ttl_ms = heartbeat_ms + 1;
		cluster = codechat_cluster_new_full(url, heartbeat_ms, ttl_ms, error);
	} else {
		cluster = codechat_cluster_new(url, error);
	}
	if (cluster == NULL)
		return NULL;
	while (!codechat_cluster_is_ready(cluster) && g_get_monotonic_time() < deadline) {
		if (!g_main_context_iteration(NULL, FALSE))
			g_usleep(1000);
	}
	if (!codechat_cluster_is_ready(cluster))
		g_warning("the cluster on redis at %s is not ready yet", url);
	return g_steal_pointer(&cluster);
}

int
main(int argc, char **argv)
{
	g_autoptr(GOptionContext) context = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(CodechatStore) store = NULL;
	g_autoptr(CodechatCluster) cluster = NULL;
	g_autofree gchar *config_path = NULL;
	g_autoptr(GKeyFile) config_file = NULL;
	g_autofree gchar *config_file_path = NULL;
	g_auto(CodechatDaemonSettings) settings = {0};
	g_auto(CodechatDaemonSettings) flags = {0};
	/* CODECHAT_LOCALEDIR, when set, replaces LOCALEDIR, as in codechat:
	 * for running from the build tree (the tests set it to <build>/po) */
	const gchar *localedir = g_getenv("CODECHAT_LOCALEDIR");
	Daemon daemon = {0};
	gboolean version = FALSE;
	gboolean verbose = FALSE;
	gboolean replace = FALSE;
	g_autoptr(CodechatAccounts) accounts = NULL;
	g_autofree gchar *listen_help = NULL;
	g_autofree gchar *config_help = NULL;
	GOptionEntry entries[] = {
	    {"listen", 0, 0, G_OPTION_ARG_STRING, &settings.listen, NULL, N_("ADDR:PORT")},
	    {"data-dir",
	     0,
	     0,
	     G_OPTION_ARG_FILENAME,
	     &settings.data_dir,
	     N_("Directory of the history store (default $XDG_DATA_HOME/codechat)"),
	     N_("DIR")},
	    {"sync",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &settings.sync,
	     N_("full: fsync every commit, an acknowledged message survives a machine crash "
		"(default); normal: survives a crash of codechatd only"),
	     "full|normal"},
	    {"redis",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &settings.redis,
	     N_("Keep history in Redis, shared with the other daemons on it, instead of the data "
		"dir: redis://HOST[:PORT][/DB] or unix:///PATH[?db=DB]"),
	     N_("URL")},
	    {"history-max",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.history_max,
	     N_("Messages kept per room or conversation, the oldest dropped beyond; 0 keeps all "
		"(default)"),
	     N_("N")},
	    {"config", 0, 0, G_OPTION_ARG_FILENAME, &config_path, NULL, N_("FILE")},
	    {"tls-cert",
	     0,
	     0,
	     G_OPTION_ARG_FILENAME,
	     &settings.tls_cert,
	     N_("Serve wss:// and https:// with this PEM certificate (and its chain); "
		"needs --tls-key"),
	     N_("FILE")},
	    {"tls-key",
	     0,
	     0,
	     G_OPTION_ARG_FILENAME,
	     &settings.tls_key,
	     N_("The PEM private key of --tls-cert"),
	     N_("FILE")},
	    {"allow-origin",
	     0,
	     0,
	     G_OPTION_ARG_STRING_ARRAY,
	     &settings.allowed_origins,
	     N_("Accept WebSocket handshakes from this browser Origin (repeatable)"),
	     N_("ORIGIN")},
	    {"hello-timeout",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.hello_timeout,
	     N_("Seconds a new connection has to send hello (default 10)"),
	     N_("SECONDS")},
	    {"rate-limit",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.rate,
	     N_("Messages per second per session, 0 for no limit (default 20)"),
	     N_("N")},
	    {"rate-burst",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.burst,
	     N_("Messages a session may send at once before the rate applies (default 50)"),
	     N_("N")},
	    {"max-connections",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.max_connections,
	     N_("Open WebSocket connections at most, 0 for no limit (default 10000)"),
	     N_("N")},
	    {"max-connections-per-address",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.max_per_address,
	     N_("Open WebSocket connections from one IP address at most, 0 for no limit "
		"(default 64 when listening beyond loopback, else 0)"),
	     N_("N")},
	    {"handshake-timeout",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.handshake_timeout,
	     N_("Seconds a TCP connection has to send a complete HTTP request, 0 for no limit "
		"(default 10)"),
	     N_("SECONDS")},
	    {"max-handshakes",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.max_handshakes,
	     N_("TCP connections without a complete HTTP request at most; past it the oldest "
		"is dropped, 0 for no limit (default 1024)"),
	     N_("N")},
	    {"max-outbound-bytes",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.max_outbound,
	     N_("Bytes waiting to be sent to one session at most; a slower reader is closed "
		"with 1013, 0 for no limit (default 1048576)"),
	     N_("BYTES")},
	    {"keepalive",
	     0,
	     0,
	     G_OPTION_ARG_INT,
	     &settings.keepalive,
	     N_("Seconds between WebSocket pings, 0 for none (default 30)"),
	     N_("SECONDS")},
	    {"permessage-deflate",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &settings.deflate,
	     N_("Offer WebSocket compression (costs CPU on every broadcast)"),
	     NULL},
	    {"allow-anonymous",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &settings.allow_anonymous,
	     N_("Listen beyond loopback even without accounts: anyone who reaches the port can "
		"chat"),
	     NULL},
	    {"bus",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &settings.bus,
	     N_("D-Bus bus to serve on: session, system or none"),
	     N_("BUS")},
	    {"notify",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &settings.notify,
	     N_("Desktop notifications: off, mentions or all"),
	     N_("WHEN")},
	    {"nick",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &settings.nick,
	     N_("The daemon's own nick"),
	     N_("NAME")},
	    {"log-format",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &settings.log_format,
	     N_("Log records as text, json or journal"),
	     N_("FORMAT")},
	    {"replace",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &replace,
	     N_("Take over the D-Bus name from a running codechatd"),
	     NULL},
	    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, N_("Log debug messages"), NULL},
	    {"version", 0, 0, G_OPTION_ARG_NONE, &version, N_("Print the version and exit"), NULL},
	    {NULL}};

	/* a peer or Redis that goes away while we write to it is an error of
	 * that write (EPIPE), never the end of the daemon: hiredis writes
	 * with plain write() */
	signal(SIGPIPE, SIG_IGN);
	setlocale(LC_ALL, "");
	raise_fd_limit();
	bindtextdomain(GETTEXT_PACKAGE,
		       localedir != NULL && localedir[0] != '\0' ? localedir : LOCALEDIR);
	bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
	textdomain(GETTEXT_PACKAGE);

	/* Translators: %s is an address such as 127.0.0.1:7373 */
	listen_help = g_strdup_printf(_("Address to listen on (default %s)"), DEFAULT_LISTEN);
	/* Translators: the two %s are paths of the config file */
	config_help = g_strdup_printf(_("Config file (default %s, then %s)"),
				      "$XDG_CONFIG_HOME/codechat/codechatd.conf",
				      SYSCONFDIR "/codechat/codechatd.conf");
	/* the descriptions of --listen and --config name values of the build:
	 * xgettext cannot see through macros, so they are formats, filled in
	 * here once the catalogue is bound */
	for (gsize i = 0; i < G_N_ELEMENTS(entries); i++) {
		if (g_strcmp0(entries[i].long_name, "listen") == 0)
			entries[i].description = listen_help;
		else if (g_strcmp0(entries[i].long_name, "config") == 0)
			entries[i].description = config_help;
	}

	codechat_daemon_settings_init(&settings);

	context = g_option_context_new(NULL);
	g_option_context_set_summary(context,
				     _("The codechat daemon: hosts chat rooms and serves them over "
				       "WebSocket at ws://ADDR:PORT/v1/ws."));
	g_option_context_set_description(
	    context,
	    _("Settings come from the options, then CODECHATD_* environment variables\n"
	      "(CODECHATD_LISTEN, CODECHATD_RATE_LIMIT, ...), then the [daemon] group of\n"
	      "the config file, then the defaults. codechatd runs in the foreground;\n"
	      "SIGINT and SIGTERM close every session with 1001 and exit; SIGHUP\n"
	      "reloads the config file.\n"
	      "\n"
	      "codechatd [--data-dir DIR] user add|list|remove NICK manages accounts:\n"
	      "“user add” prints the new token once. Once an account exists, every\n"
	      "hello needs the token of its nick. Without accounts codechatd listens\n"
	      "on loopback only (protected mode, as in Redis) unless --allow-anonymous.\n"
	      "See codechatd(8)."));
	g_option_context_add_main_entries(context, entries, GETTEXT_PACKAGE);
	if (!g_option_context_parse(context, &argc, &argv, &error)) {
		g_printerr("codechatd: %s\n", error->message);
		g_printerr(_("Run “codechatd --help” to see the options.\n"));
		return 1;
	}
	if (version) {
		g_print("codechatd %s\n", codechat_version());
		return 0;
	}
	if (argc > 1 && g_strcmp0(argv[1], "user") != 0) {
		g_printerr(_("codechatd: unexpected argument “%s”\n"), argv[1]);
		g_printerr(_("Run “codechatd --help” to see the options.\n"));
		return 1;
	}
	/* a reload resolves the flags anew, over what the file says then */
	codechat_daemon_settings_copy(&flags, &settings);
	daemon.flags = &flags;
	daemon.settings = &settings;
	daemon.config_path = config_path;
	if (!codechat_daemon_config_load(config_path, &config_file, &config_file_path, &error) ||
	    !codechat_daemon_settings_resolve_paths(&settings,
						    config_file,
						    config_file_path,
						    &error)) {
		g_printerr("codechatd: %s\n", error->message);
		return 1;
	}
	if (argc > 1)
		return run_user_command(settings.data_dir, argc, argv);
	if (!codechat_daemon_settings_resolve(&settings, config_file, config_file_path, &error)) {
		g_printerr("codechatd: %s\n", error->message);
		return 1;
	}
	{
		CodechatLogFormat format = CODECHAT_LOG_FORMAT_AUTO;
		if (settings.log_format != NULL)
			codechat_log_format_from_string(settings.log_format, &format);
		codechat_log_init("codechatd", format);
	}
	if (verbose)
		g_log_set_debug_enabled(TRUE);
	if (config_file_path != NULL)
		g_info("settings from %s", config_file_path);
	g_clear_pointer(&config_file, g_key_file_unref);
	g_clear_pointer(&config_file_path, g_free);
	if (settings.bus == NULL) {
		settings.bus = g_strdup(default_bus());
		if (g_strcmp0(settings.bus, "none") == 0)
			g_info("no session bus: not serving D-Bus");
	}

	/* with Redis, the data dir keeps the accounts only */
	if (settings.redis != NULL)
		store =
		    codechat_store_redis_new(settings.redis, settings.store_history_max, &error);
	else
		store = codechat_store_sqlite_new(settings.data_dir,
						  g_strcmp0(settings.sync, "normal") == 0
						      ? CODECHAT_STORE_SYNC_NORMAL
						      : CODECHAT_STORE_SYNC_FULL,
						  &error);
	if (store == NULL) {
		g_printerr("codechatd: %s\n", error->message);
		return 1;
	}
	if (settings.redis != NULL)
		g_info("history in Redis at %s (epoch %s)",
		       settings.redis,
		       codechat_store_get_epoch(store));
	if (CODECHAT_IS_STORE_SQLITE(store))
		codechat_store_sqlite_set_history_max(CODECHAT_STORE_SQLITE(store),
						      settings.store_history_max);
	if (settings.redis != NULL) {
		cluster = cluster_new(settings.redis, &error);
		if (cluster == NULL) {
			g_printerr("codechatd: cannot connect to Redis at %s: %s\n",
				   settings.redis,
				   error->message);
			return 1;
		}
	}
	accounts = codechat_accounts_new(settings.data_dir);
	if (!codechat_accounts_load(accounts, &error)) {
		g_printerr("codechatd: %s\n", error->message);
		return 1;
	}
	/* without a monitor, accounts still apply at the next hello; only
	 * the sessions of a removed account would stay */
	if (!codechat_accounts_watch(accounts, &error)) {
		g_warning("cannot watch %s: %s",
			  codechat_accounts_get_path(accounts),
			  error->message);
		g_clear_error(&error);
	}
	daemon.hub = codechat_hub_new(store, &settings.config);
	if (cluster != NULL)
		codechat_hub_set_cluster(daemon.hub, cluster);
	/* codechat_store_commit_seconds: the store may outlive the hub */
	if (CODECHAT_IS_STORE_SQLITE(store))
		codechat_store_sqlite_set_commit_func(
		    CODECHAT_STORE_SQLITE(store),
		    store_commit_cb,
		    codechat_metrics_ref(codechat_hub_get_metrics(daemon.hub)),
		    (GDestroyNotify)codechat_metrics_unref);
	else
		codechat_store_redis_set_commit_func(
		    CODECHAT_STORE_REDIS(store),
		    store_commit_cb,
		    codechat_metrics_ref(codechat_hub_get_metrics(daemon.hub)),
		    (GDestroyNotify)codechat_metrics_unref);
	/* D-Bus Send is not concerned: the bus is the user's own, trusted */
	codechat_hub_set_accounts(daemon.hub,
				  accounts,
				  !codechat_listen_is_loopback(settings.listen) &&
				      !settings.allow_anonymous);
	daemon.server = codechat_server_new(daemon.hub,
					    (const gchar *const *)settings.allowed_origins,
					    settings.deflate);
	codechat_server_set_handshake_limits(daemon.server,
					     settings.server_handshake_timeout,
					     settings.server_max_handshakes);
	if ((settings.tls_cert != NULL && !codechat_server_set_tls_files(daemon.server,
									 settings.tls_cert,
									 settings.tls_key,
									 &error)) ||
	    !codechat_server_listen(daemon.server, settings.listen, &error)) {
		g_printerr("codechatd: %s\n", error->message);
		g_clear_object(&daemon.server);
		g_clear_object(&daemon.hub);
		return 1;
	}
	/* checked once the address is known to be good; nothing was served */
	if (!codechat_listen_is_loopback(settings.listen) && !settings.allow_anonymous &&
	    codechat_accounts_get_n_accounts(accounts) == 0) {
		g_printerr(_("codechatd: refusing to listen on %s without accounts: anyone who "
			     "reaches it could chat under any nick. Add an account with "
			     "“codechatd user add NICK”, listen on loopback, or pass "
			     "--allow-anonymous.\n"),
			   settings.listen);
		g_clear_object(&daemon.server);
		g_clear_object(&daemon.hub);
		return 1;
	}
	daemon_update_notifier(&daemon);

	daemon.loop = g_main_loop_new(NULL, FALSE);
	g_signal_connect(daemon.hub, "drained", G_CALLBACK(hub_drained_cb), &daemon);
	g_unix_signal_add(SIGINT, quit_signal_cb, &daemon);
	g_unix_signal_add(SIGTERM, quit_signal_cb, &daemon);
	g_unix_signal_add(SIGHUP, reload_signal_cb, &daemon);

	if (g_strcmp0(settings.bus, "none") != 0) {
		g_autofree gchar *nick = own_nick(&settings);
		daemon.bus_name = g_strcmp0(settings.bus, "system") == 0 ? "system" : "session";
		daemon.dbus = codechat_dbus_service_new(daemon.hub,
							codechat_server_get_uri(daemon.server),
							nick);
		daemon.owner_id = g_bus_own_name(
		    g_strcmp0(settings.bus, "system") == 0 ? G_BUS_TYPE_SYSTEM : G_BUS_TYPE_SESSION,
		    CODECHAT_DBUS_NAME,
		    G_BUS_NAME_OWNER_FLAGS_ALLOW_REPLACEMENT |
			(replace ? G_BUS_NAME_OWNER_FLAGS_REPLACE : 0),
		    bus_acquired_cb,
		    name_acquired_cb,
		    name_lost_cb,
		    &daemon,
		    NULL);
	}

	/* the one line on stdout: where to connect (tests read it too) */
	g_print("codechatd: listening on %s\n", codechat_server_get_uri(daemon.server));
	fflush(stdout);
	g_message("codechatd %s listening on %s",
		  codechat_version(),
		  codechat_server_get_uri(daemon.server));

	g_main_loop_run(daemon.loop);

	g_clear_handle_id(&daemon.drain_timeout_id, g_source_remove);
	if (daemon.owner_id != 0)
		g_bus_unown_name(daemon.owner_id);
	/* unexporting what was never exported (no bus, or a signal before the
	 * bus came) is a critical */
	if (daemon.dbus != NULL && g_dbus_interface_skeleton_get_connection(
				       G_DBUS_INTERFACE_SKELETON(daemon.dbus)) != NULL)
		g_dbus_interface_skeleton_unexport(G_DBUS_INTERFACE_SKELETON(daemon.dbus));
	g_clear_object(&daemon.dbus);
	if (daemon.notifier != NULL)
		g_signal_handlers_disconnect_by_data(daemon.hub, daemon.notifier);
	g_clear_object(&daemon.notifier);
	/* the other daemons see this one's members quit at once, not when
	 * its heartbeat expired; the sessions were closed (drained) first */
	if (cluster != NULL && !codechat_cluster_shutdown(cluster, &error)) {
		g_warning("%s", error->message);
		g_clear_error(&error);
	}
	/* every message in flight is committed and answered before exit */
	codechat_store_flush(store);
	codechat_server_disconnect(daemon.server);
	g_clear_object(&daemon.server);
	g_clear_object(&daemon.hub);
	g_main_loop_unref(daemon.loop);
	g_message("stopped");
	return daemon.exit_status;
}
