/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <locale.h>
#include <signal.h>
#include <stdio.h>

#include "codechat-hub.h"
#include "codechat-log.h"
#include "codechat-server.h"
#include "codechat-store.h"
#include "codechat-version.h"

typedef struct {
	GMainLoop *loop;	/* (owned) */
	CodechatHub *hub;	/* (owned) */
	CodechatServer *server; /* (owned) */
	guint drain_timeout_id; /* GSource id, 0 if none */
	gint exit_status;
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

static gboolean
check_choice(const gchar *option, const gchar *value, const gchar *const *choices, GError **error)
{
	g_autofree gchar *list = NULL;

	if (value == NULL || g_strv_contains(choices, value))
		return TRUE;
	list = g_strjoinv(", ", (gchar **)choices);
	g_set_error(error,
		    G_OPTION_ERROR,
		    G_OPTION_ERROR_BAD_VALUE,
		    "%s must be one of %s, not “%s”",
		    option,
		    list,
		    value);
	return FALSE;
}

static gboolean
check_uint(const gchar *option, gint value, gint min, guint *out, GError **error)
{
	if (value < min) {
		g_set_error(error,
			    G_OPTION_ERROR,
			    G_OPTION_ERROR_BAD_VALUE,
			    "%s must be at least %d",
			    option,
			    min);
		return FALSE;
	}
	*out = (guint)value;
	return TRUE;
}

int
main(int argc, char **argv)
{
	g_autoptr(GOptionContext) context = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(CodechatStore) store = NULL;
	g_autofree gchar *listen = NULL;
	g_autofree gchar *data_dir = NULL;
	g_autofree gchar *bus = NULL;
	g_autofree gchar *notify = NULL;
	g_autofree gchar *nick = NULL;
	g_autofree gchar *log_format = NULL;
	g_auto(GStrv) allowed_origins = NULL;
	CodechatHubConfig config;
	Daemon daemon = {0};
	gboolean version = FALSE;
	gboolean verbose = FALSE;
	gboolean deflate = FALSE;
	gint hello_timeout = CODECHAT_DEFAULT_HELLO_TIMEOUT;
	gint rate = CODECHAT_DEFAULT_RATE;
	gint burst = CODECHAT_DEFAULT_BURST;
	gint keepalive = CODECHAT_DEFAULT_KEEPALIVE;
	gint max_connections;
	const gchar *bus_choices[] = {"session", "system", "none", NULL};
	const gchar *notify_choices[] = {"off", "mentions", "all", NULL};
	const gchar *log_choices[] = {"text", "json", "journal", NULL};
	const GOptionEntry entries[] = {
	    {"listen", 0, 0, G_OPTION_ARG_STRING, &listen,
	     N_("Address to listen on (default " DEFAULT_LISTEN ")"), "ADDR:PORT"},
	    {"data-dir", 0, 0, G_OPTION_ARG_FILENAME, &data_dir,
	     N_("Directory of the history store (default $XDG_DATA_HOME/codechat)"), "DIR"},
	    {"allow-origin", 0, 0, G_OPTION_ARG_STRING_ARRAY, &allowed_origins,
	     N_("Accept WebSocket handshakes from this browser Origin (repeatable)"), "ORIGIN"},
	    {"hello-timeout", 0, 0, G_OPTION_ARG_INT, &hello_timeout,
	     N_("Seconds a new connection has to send hello (default 10)"), "SECONDS"},
	    {"rate-limit", 0, 0, G_OPTION_ARG_INT, &rate,
	     N_("Messages per second per session, 0 for no limit (default 20)"), "N"},
	    {"rate-burst", 0, 0, G_OPTION_ARG_INT, &burst,
	     N_("Messages a session may send at once before the rate applies (default 50)"), "N"},
	    {"max-connections", 0, 0, G_OPTION_ARG_INT, &max_connections,
	     N_("Open WebSocket connections at most, 0 for no limit (default 10000)"), "N"},
	    {"keepalive", 0, 0, G_OPTION_ARG_INT, &keepalive,
	     N_("Seconds between WebSocket pings, 0 for none (default 30)"), "SECONDS"},
	    {"permessage-deflate", 0, 0, G_OPTION_ARG_NONE, &deflate,
	     N_("Offer WebSocket compression (costs CPU on every broadcast)"), NULL},
	    {"bus", 0, 0, G_OPTION_ARG_STRING, &bus,
	     N_("D-Bus bus to serve on: session, system or none"), "BUS"},
	    {"notify", 0, 0, G_OPTION_ARG_STRING, &notify,
	     N_("Desktop notifications: off, mentions or all"), "WHEN"},
	    {"nick", 0, 0, G_OPTION_ARG_STRING, &nick, N_("The daemon's own nick"), "NAME"},
	    {"log-format", 0, 0, G_OPTION_ARG_STRING, &log_format,
	     N_("Log records as text, json or journal"), "FORMAT"},
	    {"verbose", 'v', 0, G_OPTION_ARG_NONE, &verbose, N_("Log debug messages"), NULL},
	    {"version", 0, 0, G_OPTION_ARG_NONE, &version, N_("Print the version and exit"), NULL},
	    {NULL}};

	setlocale(LC_ALL, "");
	bindtextdomain(GETTEXT_PACKAGE, LOCALEDIR);
	bind_textdomain_codeset(GETTEXT_PACKAGE, "UTF-8");
	textdomain(GETTEXT_PACKAGE);

	codechat_hub_config_init(&config);
	max_connections = (gint)config.max_connections;

	context = g_option_context_new(NULL);
	g_option_context_set_summary(context,
				     _("The codechat daemon: hosts chat rooms and serves them over "
				       "WebSocket at ws://ADDR:PORT/v1/ws."));
	g_option_context_set_description(context,
					 _("codechatd runs in the foreground; SIGINT and SIGTERM "
					   "close every session and exit.\n"
					   "See codechatd(1) and the wire protocol in PROTOCOL.md."));
	g_option_context_add_main_entries(context, entries, GETTEXT_PACKAGE);
	if (!g_option_context_parse(context, &argc, &argv, &error)) {
		g_printerr("codechatd: %s\n", error->message);
		g_printerr("Run “codechatd --help” to see the options.\n");
		return 1;
	}
	if (version) {
		g_print("codechatd %s\n", codechat_version());
		return 0;
	}
	if (argc > 1) {
		g_printerr("codechatd: unexpected argument “%s”\n", argv[1]);
		g_printerr("Run “codechatd --help” to see the options.\n");
		return 1;
	}
	if (!check_choice("--bus", bus, bus_choices, &error) ||
	    !check_choice("--notify", notify, notify_choices, &error) ||
	    !check_choice("--log-format", log_format, log_choices, &error) ||
	    !check_uint("--hello-timeout", hello_timeout, 1, &config.hello_timeout, &error) ||
	    !check_uint("--rate-limit", rate, 0, &config.rate, &error) ||
	    !check_uint("--rate-burst", burst, 1, &config.burst, &error) ||
	    !check_uint("--keepalive", keepalive, 0, &config.keepalive, &error) ||
	    !check_uint("--max-connections", max_connections, 0, &config.max_connections, &error) ||
	    (nick != NULL && !codechat_validate_nick(nick, &error))) {
		g_printerr("codechatd: %s\n", error->message);
		return 1;
	}
	{
		CodechatLogFormat format = CODECHAT_LOG_FORMAT_AUTO;
		if (log_format != NULL)
			codechat_log_format_from_string(log_format, &format);
		codechat_log_init("codechatd", format);
	}
	if (verbose)
		g_log_set_debug_enabled(TRUE);
	if (g_strcmp0(bus, "session") == 0 || g_strcmp0(bus, "system") == 0)
		g_info("the D-Bus service is not built into this version; serving WebSocket only");

	store = codechat_store_memory_new();
	daemon.hub = codechat_hub_new(store, &config);
	daemon.server = codechat_server_new(daemon.hub,
					    (const gchar *const *)allowed_origins,
					    deflate);
	if (!codechat_server_listen(daemon.server, listen != NULL ? listen : DEFAULT_LISTEN, &error)) {
		g_printerr("codechatd: %s\n", error->message);
		g_clear_object(&daemon.server);
		g_clear_object(&daemon.hub);
		return 1;
	}

	daemon.loop = g_main_loop_new(NULL, FALSE);
	g_signal_connect(daemon.hub, "drained", G_CALLBACK(hub_drained_cb), &daemon);
	g_unix_signal_add(SIGINT, quit_signal_cb, &daemon);
	g_unix_signal_add(SIGTERM, quit_signal_cb, &daemon);

	/* the one line on stdout: where to connect (tests read it too) */
	g_print("codechatd: listening on %s\n", codechat_server_get_uri(daemon.server));
	fflush(stdout);
	g_message("codechatd %s listening on %s", codechat_version(),
		  codechat_server_get_uri(daemon.server));

	g_main_loop_run(daemon.loop);

	g_clear_handle_id(&daemon.drain_timeout_id, g_source_remove);
	codechat_server_disconnect(daemon.server);
	g_clear_object(&daemon.server);
	g_clear_object(&daemon.hub);
	g_main_loop_unref(daemon.loop);
	g_message("stopped");
	return daemon.exit_status;
}
