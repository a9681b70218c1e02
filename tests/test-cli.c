/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <gio/gio.h>
#include <glib/gstdio.h>
#include <json-glib/json-glib.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>

#include "codechat-protocol.h"
#include "codechat-test-client.h"
#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"
#include "codechat-version.h"

/* The real `codechat` binary against a real codechatd.  Every run of the
 * client and every wait is bounded, so that a hang fails instead of
 * stalling the suite. */

#define flag_cb	     codechat_test_flag_cb
#define wait_until   codechat_test_wait_until
#define sleep_ms     codechat_test_sleep_ms
#define wait_exit    codechat_test_wait_exit
#define wait_cb	     codechat_test_wait_cb
#define run_env	     codechat_test_client_run
#define launcher_new codechat_test_client_launcher_new

typedef struct {
	CodechatTestDaemon *daemon; /* (owned) */
} Fixture;

/* a failed assertion aborts before the teardown: take the daemon along,
 * or it keeps the test's stderr open and the harness waits for it */
static volatile pid_t daemon_pid = 0;

static void
abort_handler(int signum)
{
	if (daemon_pid > 0)
		kill(daemon_pid, SIGKILL);
	signal(signum, SIG_DFL);
	raise(signum);
}

static void
fixture_setup(Fixture *f, gconstpointer data)
{
	const gchar *pid;

	f->daemon = codechat_test_daemon_start(NULL);
	pid = g_subprocess_get_identifier(f->daemon->proc);
	g_assert_nonnull(pid);
	daemon_pid = (pid_t)g_ascii_strtoll(pid, NULL, 10);
	signal(SIGABRT, abort_handler);
}

/* for tests that post faster than a person */
static void
fixture_setup_unlimited(Fixture *f, gconstpointer data)
{
	const gchar *const args[] = {"--rate-limit", "0", NULL};
	const gchar *pid;

	f->daemon = codechat_test_daemon_start(args);
	pid = g_subprocess_get_identifier(f->daemon->proc);
	g_assert_nonnull(pid);
	daemon_pid = (pid_t)g_ascii_strtoll(pid, NULL, 10);
	signal(SIGABRT, abort_handler);
}

static void
fixture_teardown(Fixture *f, gconstpointer data)
{
	daemon_pid = 0;
	g_assert_cmpint(codechat_test_daemon_stop(f->daemon), ==, 0);
	g_clear_pointer(&f->daemon, codechat_test_daemon_free);
}

/* a free loopback port with nobody listening on it */
static guint16
closed_port(void)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSocket) socket = NULL;
	g_autoptr(GInetAddress) loopback = g_inet_address_new_loopback(G_SOCKET_FAMILY_IPV4);
	g_autoptr(GSocketAddress) address = g_inet_socket_address_new(loopback, 0);
	g_autoptr(GSocketAddress) bound = NULL;
	guint16 port;

	socket =
	    g_socket_new(G_SOCKET_FAMILY_IPV4, G_SOCKET_TYPE_STREAM, G_SOCKET_PROTOCOL_TCP, &error);
	g_assert_no_error(error);
	g_socket_bind(socket, address, FALSE, &error);
	g_assert_no_error(error);
	bound = g_socket_get_local_address(socket, &error);
	g_assert_no_error(error);
	port = g_inet_socket_address_get_port(G_INET_SOCKET_ADDRESS(bound));
	g_socket_close(socket, &error);
	g_assert_no_error(error);
	return port;
}

static gchar *
closed_uri(void)
{
	return g_strdup_printf("ws://127.0.0.1:%u/v1/ws", closed_port());
}

#define run(out, err, ...)		run_env(NULL, NULL, out, err, __VA_ARGS__, NULL)
#define run_input(input, out, err, ...) run_env(NULL, input, out, err, __VA_ARGS__, NULL)

/* the lines of @text as JSON objects; every line must be one */
static GPtrArray *
parse_json_lines(const gchar *text)
{
	g_autoptr(GPtrArray) objects =
	    g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
	g_auto(GStrv) lines = g_strsplit(text, "\n", -1);

	for (guint i = 0; lines[i] != NULL; i++) {
		g_autoptr(JsonParser) parser = json_parser_new();
		g_autoptr(GError) error = NULL;
		JsonNode *root;

		if (lines[i][0] == '\0')
			continue;
		json_parser_load_from_data(parser, lines[i], -1, &error);
		g_assert_no_error(error);
		root = json_parser_get_root(parser);
		g_assert_nonnull(root);
		g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
		g_ptr_array_add(objects, json_object_ref(json_node_get_object(root)));
	}
	return g_steal_pointer(&objects);
}

/* `codechat --json history` of @room: the messages, oldest first */
static GPtrArray *
history_json(Fixture *f, const gchar *room)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run(&out,
			    &err,
			    "--server",
			    f->daemon->uri,
			    "--nick",
			    "reader",
			    "--json",
			    "history",
			    "--room",
			    room),
			==,
			0);
	return parse_json_lines(out);
}

static JsonObject *
last_message(GPtrArray *messages)
{
	JsonObject *msg;

	g_assert_cmpuint(messages->len, >, 0);
	msg = g_ptr_array_index(messages, messages->len - 1);
	g_assert_cmpstr(json_object_get_string_member(msg, "type"), ==, "message");
	/* ref belongs to the request, not to what scripts see */
	g_assert_false(json_object_has_member(msg, "ref"));
	return msg;
}

/* `watch` running in the background */

typedef struct {
	GSubprocess *proc;	    /* (owned) */
	GDataInputStream *out;	    /* (owned) */
	CodechatTestErrReader *err; /* (owned) (nullable) its stderr, if captured */
	gchar *nick;		    /* (owned) */
	gboolean stopped;
} Watcher;

static void
watcher_free(Watcher *w)
{
	/* the exit status can only be asked once the process was waited for */
	if (w->proc != NULL && !w->stopped) {
		gboolean done = FALSE;

		g_subprocess_force_exit(w->proc);
		g_subprocess_wait_async(w->proc, NULL, wait_cb, &done);
		wait_until(&done, RUN_TIMEOUT_MS);
	}
	if (w->err != NULL) {
		g_cancellable_cancel(w->err->cancellable);
		codechat_test_err_reader_unref(w->err);
	}
	g_clear_object(&w->out);
	g_clear_object(&w->proc);
	g_free(w->nick);
	g_free(w);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(Watcher, watcher_free)

/* is @nick among the members of @room, by `codechat who --json`? */
static gboolean
is_member(const gchar *uri, const gchar *room, const gchar *nick)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GPtrArray) members = NULL;

	g_assert_cmpint(
	    run(&out, &err, "--server", uri, "--nick", "poller", "who", "--json", "--room", room),
	    ==,
	    0);
	members = parse_json_lines(out);
	for (guint i = 0; i < members->len; i++) {
		JsonObject *obj = g_ptr_array_index(members, i);

		g_assert_cmpstr(json_object_get_string_member(obj, "room"), ==, room);
		if (g_strcmp0(json_object_get_string_member(obj, "nick"), nick) == 0)
			return TRUE;
	}
	return FALSE;
}

static void
wait_member(const gchar *uri, const gchar *room, const gchar *nick, gboolean present)
{
	gint64 deadline = g_get_monotonic_time() + WAIT_TIMEOUT_MS * 1000;

	while (is_member(uri, room, nick) != present) {
		g_assert_cmpint(g_get_monotonic_time(), <, deadline);
		sleep_ms(POLL_INTERVAL_MS);
	}
}

typedef enum {
	WATCH_DEFAULT = 0,
	WATCH_QUIET = 1 << 0,	       /* with --quiet */
	WATCH_CAPTURE_STDERR = 1 << 1, /* else it goes to the test log */
	WATCH_NO_WAIT = 1 << 2,	       /* return before it joined */
} WatchFlags;

/* starts `codechat --json watch --room ROOM…` and waits until it joined */
static Watcher *
watcher_start_full(const gchar *uri, const gchar *nick, const gchar *const *rooms, WatchFlags flags)
{
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GError) error = NULL;
	GSubprocessFlags sflags = G_SUBPROCESS_FLAGS_STDIN_PIPE | G_SUBPROCESS_FLAGS_STDOUT_PIPE;
	Watcher *w = g_new0(Watcher, 1);

	g_ptr_array_add(argv, (gpointer)codechat_test_client_path());
	g_ptr_array_add(argv, (gpointer) "--server");
	g_ptr_array_add(argv, (gpointer)uri);
	g_ptr_array_add(argv, (gpointer) "--nick");
	g_ptr_array_add(argv, (gpointer)nick);
	g_ptr_array_add(argv, (gpointer) "--json");
	if (flags & WATCH_QUIET)
		g_ptr_array_add(argv, (gpointer) "--quiet");
	g_ptr_array_add(argv, (gpointer) "watch");
	for (guint i = 0; rooms[i] != NULL; i++) {
		g_ptr_array_add(argv, (gpointer) "--room");
		g_ptr_array_add(argv, (gpointer)rooms[i]);
	}
	g_ptr_array_add(argv, NULL);

	if (flags & WATCH_CAPTURE_STDERR)
		sflags |= G_SUBPROCESS_FLAGS_STDERR_PIPE;
	launcher = launcher_new(sflags, NULL);
	w->proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	w->out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(w->proc));
	if (flags & WATCH_CAPTURE_STDERR)
		w->err = codechat_test_err_reader_new(g_subprocess_get_stderr_pipe(w->proc), FALSE);
	w->nick = g_strdup(nick);
	for (guint i = 0; rooms[i] != NULL && !(flags & WATCH_NO_WAIT); i++)
		wait_member(uri, rooms[i], nick, TRUE);
	return w;
}

static Watcher *
watcher_start(const gchar *uri, const gchar *nick, const gchar *const *rooms)
{
	return watcher_start_full(uri, nick, rooms, WATCH_DEFAULT);
}

typedef struct {
	gboolean done;
	gchar *line;
	GError *error;
} ReadLine;

static void
read_line_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	ReadLine *r = user_data;

	r->line = g_data_input_stream_read_line_finish_utf8(G_DATA_INPUT_STREAM(source),
							    result,
							    NULL,
							    &r->error);
	r->done = TRUE;
}

/* the next line the watcher prints, as JSON */
static JsonObject *
watcher_read(Watcher *w)
{
	g_autoptr(GCancellable) cancellable = g_cancellable_new();
	g_autoptr(JsonParser) parser = json_parser_new();
	g_autoptr(GError) error = NULL;
	g_autofree gchar *line = NULL;
	ReadLine r = {FALSE};
	JsonNode *root;

	g_data_input_stream_read_line_async(w->out,
					    G_PRIORITY_DEFAULT,
					    cancellable,
					    read_line_cb,
					    &r);
	if (!wait_until(&r.done, WAIT_TIMEOUT_MS)) {
		g_cancellable_cancel(cancellable);
		wait_until(&r.done, WAIT_TIMEOUT_MS);
		g_assert_not_reached(); /* no line from watch in time */
	}
	g_assert_no_error(r.error);
	g_assert_nonnull(r.line); /* not the end of the output */
	line = r.line;
	g_test_message("watch: %s", line);
	json_parser_load_from_data(parser, line, -1, &error);
	g_assert_no_error(error);
	root = json_parser_get_root(parser);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(root));
	return json_object_ref(json_node_get_object(root));
}

static void
watcher_expect(Watcher *w, const gchar *room, const gchar *from, const gchar *text)
{
	g_autoptr(JsonObject) msg = watcher_read(w);

	g_assert_cmpstr(json_object_get_string_member(msg, "type"), ==, "message");
	g_assert_cmpstr(json_object_get_string_member(msg, "room"), ==, room);
	g_assert_cmpstr(json_object_get_string_member(msg, "from"), ==, from);
	g_assert_cmpstr(json_object_get_string_member(msg, "text"), ==, text);
	g_assert_false(json_object_has_member(msg, "ref"));
	g_assert_cmpint(json_object_get_int_member(msg, "id"), >, 0);
}

/* SIGTERM: a clean close and exit status 0 */
static void
watcher_stop(Watcher *w)
{
	g_subprocess_send_signal(w->proc, SIGTERM);
	g_assert_cmpint(wait_exit(w->proc, RUN_TIMEOUT_MS), ==, 0);
	w->stopped = TRUE;
}

/* all that a stopped watcher wrote on stderr, once its end was read */
static const gchar *
watcher_stderr(Watcher *w)
{
	g_assert_true(w->stopped);
	g_assert_nonnull(w->err);
	wait_until(&w->err->eof, WAIT_TIMEOUT_MS);
	g_assert_true(w->err->eof);
	g_test_message("watch's stderr:\n%s", w->err->text->str);
	return w->err->text->str;
}

static void
send_text(const gchar *uri, const gchar *nick, const gchar *room, const gchar *text)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(
	    run(&out, &err, "--server", uri, "--nick", nick, "send", "--room", room, text),
	    ==,
	    0);
	g_assert_cmpstr(out, ==, "");
}

/* the cases */

static void
test_version(void)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *expected = g_strdup_printf("codechat %s\n", codechat_version());

	g_assert_cmpint(run(&out, &err, "--version"), ==, 0);
	g_assert_cmpstr(out, ==, expected);
	g_assert_cmpstr(err, ==, "");
}

static void
test_help(void)
{
	const gchar *const commands[] = {"send", "history", "watch", "rooms", "who", "status"};
	const gchar *const global_options[] = {"--server",
					       "--nick",
					       "--json",
					       "--version",
					       "--color"};
	const gchar *const options[][5] = {
	    {"--room", "--to", "--code", NULL, NULL},
	    {"--room", "--with", "--limit", "--before", "--after"},
	    {"--room", "--notify", NULL, NULL, NULL},
	    {"--help", NULL, NULL, NULL, NULL},
	    {"--room", NULL, NULL, NULL, NULL},
	    {"--help", NULL, NULL, NULL, NULL},
	};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run(&out, &err, "--help"), ==, 0);
	g_assert_nonnull(strstr(out, "COMMAND"));
	for (gsize i = 0; i < G_N_ELEMENTS(commands); i++) {
		g_autofree gchar *line = g_strdup_printf("\n  %s ", commands[i]);
		g_assert_nonnull(strstr(out, line));
	}
	for (gsize i = 0; i < G_N_ELEMENTS(global_options); i++)
		g_assert_nonnull(strstr(out, global_options[i]));
	g_assert_nonnull(strstr(out, "CODECHAT_SERVER"));

	/* each command helps with its own options, and does not connect */
	for (gsize i = 0; i < G_N_ELEMENTS(commands); i++) {
		g_autofree gchar *cout = NULL;
		g_autofree gchar *cerr = NULL;
		g_autofree gchar *usage = g_strdup_printf("codechat %s", commands[i]);
		g_autofree gchar *bad = closed_uri();

		g_assert_cmpint(run(&cout, &cerr, "--server", bad, commands[i], "--help"), ==, 0);
		g_assert_nonnull(strstr(cout, usage));
		for (gsize j = 0; j < G_N_ELEMENTS(options[i]) && options[i][j] != NULL; j++)
			g_assert_nonnull(strstr(cout, options[i][j]));
	}
}

static void
test_unknown_command(void)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *out2 = NULL;
	g_autofree gchar *err2 = NULL;

	g_assert_cmpint(run(&out, &err, "frobnicate"), ==, 1);
	g_assert_nonnull(strstr(err, "frobnicate"));
	g_assert_nonnull(strstr(err, "--help"));
	g_assert_cmpstr(out, ==, "");

	/* no command at all is a usage error too */
	g_assert_cmpint(run(&out2, &err2, "--json"), ==, 1);
	g_assert_nonnull(strstr(err2, "--help"));
}

static void
test_bad_option(void)
{
	g_autofree gchar *bad = closed_uri();
	struct {
		const gchar *args[6];
		const gchar *mention;
	} cases[] = {
	    {{"--frobnicate", "rooms"}, "--frobnicate"},
	    {{"send", "--frobnicate", "hi"}, "--frobnicate"},
	    {{"history", "--limit", "many"}, "--limit"},
	    {{"history", "--limit", "0"}, "--limit"},
	    {{"history", "--before", "-3"}, "--before"},
	    {{"--color=sometimes", "rooms"}, "--color"},
	    {{"--server", "http://127.0.0.1/", "rooms"}, "http://127.0.0.1/"},
	    {{"rooms", "extra"}, "extra"},
	    {{"send", "--room", "general", "--to", "bob", "hi"}, "--to"},
	    {{"send", "--code", "no spaces", "hi"}, "--code"},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		const gchar *const *a = cases[i].args;

		/* a usage error is found before any connection: the server
		 * given is a closed port, which would be exit status 2 */
		g_assert_cmpint(run_env(NULL,
					"text",
					&out,
					&err,
					"--server",
					bad,
					a[0],
					a[1],
					a[2],
					a[3],
					a[4],
					a[5],
					NULL),
				==,
				1);
		g_assert_nonnull(strstr(err, cases[i].mention));
		g_assert_nonnull(strstr(err, "--help"));
	}
}

static void
test_send_history(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *hout = NULL;
	g_autofree gchar *herr = NULL;
	g_autofree gchar *before = NULL;
	g_autoptr(GPtrArray) messages = NULL;
	g_autoptr(GPtrArray) page = NULL;
	JsonObject *msg;
	gint64 first_id;

	g_assert_cmpint(run(&out,
			    &err,
			    "--server",
			    f->daemon->uri,
			    "--nick",
			    "alice",
			    "send",
			    "hello",
			    "world"),
			==,
			0);
	g_assert_cmpstr(out, ==, "");

	/* plain history: the line for people */
	g_assert_cmpint(run(&hout, &herr, "--server", f->daemon->uri, "--nick", "bob", "history"),
			==,
			0);
	g_assert_nonnull(strstr(hout, "#general <alice> hello world\n"));
	g_assert_true(g_str_has_prefix(hout, "["));

	messages = history_json(f, "general");
	g_assert_cmpuint(messages->len, ==, 1);
	msg = last_message(messages);
	g_assert_cmpstr(json_object_get_string_member(msg, "text"), ==, "hello world");
	g_assert_cmpstr(json_object_get_string_member(msg, "from"), ==, "alice");
	g_assert_cmpstr(json_object_get_string_member(msg, "room"), ==, "general");
	g_assert_cmpstr(json_object_get_string_member(msg, "kind"), ==, "text");
	first_id = json_object_get_int_member(msg, "id");

	send_text(f->daemon->uri, "alice", "general", "second");
	send_text(f->daemon->uri, "alice", "general", "third");
	g_clear_pointer(&messages, g_ptr_array_unref);
	messages = history_json(f, "general");
	g_assert_cmpuint(messages->len, ==, 3);
	g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(messages, 0), "text"),
			==,
			"hello world");
	g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(messages, 2), "text"),
			==,
			"third");

	/* --limit: the latest page, oldest first */
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(
	    run(&out, &err, "--server", f->daemon->uri, "--json", "history", "--limit", "2"),
	    ==,
	    0);
	page = parse_json_lines(out);
	g_assert_cmpuint(page->len, ==, 2);
	g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(page, 0), "text"),
			==,
			"second");
	g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(page, 1), "text"),
			==,
			"third");

	/* --before: older than an id */
	g_clear_pointer(&page, g_ptr_array_unref);
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	before = g_strdup_printf("%" G_GINT64_FORMAT,
				 json_object_get_int_member(g_ptr_array_index(messages, 1), "id"));
	g_assert_cmpint(
	    run(&out, &err, "--server", f->daemon->uri, "--json", "history", "--before", before),
	    ==,
	    0);
	page = parse_json_lines(out);
	g_assert_cmpuint(page->len, ==, 1);
	g_assert_cmpint(json_object_get_int_member(g_ptr_array_index(page, 0), "id"), ==, first_id);
}

/* the ids of @messages, as "1,2,3" */
static gchar *
ids_of(GPtrArray *messages)
{
	g_autoptr(GString) str = g_string_new(NULL);

	for (guint i = 0; i < messages->len; i++) {
		JsonObject *msg = g_ptr_array_index(messages, i);

		g_string_append_printf(str,
				       "%s%" G_GINT64_FORMAT,
				       i > 0 ? "," : "",
				       json_object_get_int_member(msg, "id"));
	}
	return g_string_free(g_steal_pointer(&str), FALSE);
}

/* `send --to` is a direct message, read back with `history --with` by
 * either side of the conversation, and by nobody else */
static void
test_history_with(Fixture *f, gconstpointer data)
{
	const gchar *uri = f->daemon->uri;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *ack_out = NULL;
	g_autofree gchar *ack_err = NULL;
	g_autofree gchar *bob_out = NULL;
	g_autofree gchar *bob_err = NULL;
	g_autofree gchar *plain_out = NULL;
	g_autofree gchar *plain_err = NULL;
	g_autofree gchar *carol_out = NULL;
	g_autofree gchar *carol_err = NULL;
	g_autofree gchar *after_out = NULL;
	g_autofree gchar *after_err = NULL;
	g_autofree gchar *unknown_out = NULL;
	g_autofree gchar *unknown_err = NULL;
	g_autofree gchar *room_out = NULL;
	g_autofree gchar *room_err = NULL;
	g_autofree gchar *first_id = NULL;
	g_autoptr(GPtrArray) acks = NULL;
	g_autoptr(GPtrArray) page = NULL;
	g_autoptr(GPtrArray) after = NULL;
	JsonObject *msg;

	/* bob has connected once, so he can be written to while away */
	g_assert_cmpint(run(&out, &err, "--server", uri, "--nick", "bob", "status"), ==, 0);

	send_text(uri, "alice", "general", "in the room, not direct");
	g_assert_cmpint(run(&ack_out,
			    &ack_err,
			    "--server",
			    uri,
			    "--nick",
			    "alice",
			    "--json",
			    "send",
			    "--to",
			    "bob",
			    "psst"),
			==,
			0);
	acks = parse_json_lines(ack_out);
	g_assert_cmpuint(acks->len, ==, 1);
	msg = g_ptr_array_index(acks, 0);
	g_assert_cmpstr(json_object_get_string_member(msg, "to"), ==, "bob");
	g_assert_false(json_object_has_member(msg, "room"));
	first_id = g_strdup_printf("%" G_GINT64_FORMAT, json_object_get_int_member(msg, "id"));
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(
	    run(&out, &err, "--server", uri, "--nick", "alice", "send", "--to", "bob", "second"),
	    ==,
	    0);
	g_assert_cmpstr(out, ==, "");

	/* bob reads the conversation with alice, oldest first */
	g_assert_cmpint(run(&bob_out,
			    &bob_err,
			    "--server",
			    uri,
			    "--nick",
			    "bob",
			    "--json",
			    "history",
			    "--with",
			    "alice"),
			==,
			0);
	page = parse_json_lines(bob_out);
	g_assert_cmpuint(page->len, ==, 2);
	for (guint i = 0; i < page->len; i++) {
		msg = g_ptr_array_index(page, i);
		g_assert_cmpstr(json_object_get_string_member(msg, "type"), ==, "message");
		g_assert_cmpstr(json_object_get_string_member(msg, "from"), ==, "alice");
		g_assert_cmpstr(json_object_get_string_member(msg, "to"), ==, "bob");
		g_assert_false(json_object_has_member(msg, "room"));
		g_assert_false(json_object_has_member(msg, "ref"));
	}
	g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(page, 0), "text"),
			==,
			"psst");
	g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(page, 1), "text"),
			==,
			"second");
	g_assert_cmpint(json_object_get_int_member(g_ptr_array_index(page, 0), "id"),
			<,
			json_object_get_int_member(g_ptr_array_index(page, 1), "id"));

	/* alice reads the same conversation, as people do */
	g_assert_cmpint(run(&plain_out,
			    &plain_err,
			    "--server",
			    uri,
			    "--nick",
			    "alice",
			    "history",
			    "--with",
			    "bob"),
			==,
			0);
	g_assert_nonnull(strstr(plain_out, "<alice> -> bob: psst\n"));
	g_assert_nonnull(strstr(plain_out, "<alice> -> bob: second\n"));
	g_assert_null(strstr(plain_out, "in the room"));

	/* --after pages forward within the conversation */
	g_assert_cmpint(run(&after_out,
			    &after_err,
			    "--server",
			    uri,
			    "--nick",
			    "alice",
			    "--json",
			    "history",
			    "--with",
			    "bob",
			    "--after",
			    first_id),
			==,
			0);
	after = parse_json_lines(after_out);
	g_assert_cmpuint(after->len, ==, 1);
	g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(after, 0), "text"),
			==,
			"second");

	/* carol's conversation with alice is another one, empty */
	g_assert_cmpint(run(&carol_out,
			    &carol_err,
			    "--server",
			    uri,
			    "--nick",
			    "carol",
			    "history",
			    "--with",
			    "alice"),
			==,
			0);
	g_assert_cmpstr(carol_out, ==, "");

	/* and the room did not get the direct messages */
	g_assert_cmpint(run(&room_out, &room_err, "--server", uri, "--json", "history"), ==, 0);
	g_clear_pointer(&page, g_ptr_array_unref);
	page = parse_json_lines(room_out);
	g_assert_cmpuint(page->len, ==, 1);
	g_assert_cmpstr(json_object_get_string_member(last_message(page), "text"),
			==,
			"in the room, not direct");

	/* a nick the server never saw: refused, exit status 3 */
	g_assert_cmpint(run(&unknown_out,
			    &unknown_err,
			    "--server",
			    uri,
			    "--nick",
			    "alice",
			    "history",
			    "--with",
			    "neverseen"),
			==,
			3);
	g_assert_nonnull(strstr(unknown_err, "(unknown-nick)"));
}

/* --after pages forward from an id, --after 0 from the start */
static void
test_history_after(Fixture *f, gconstpointer data)
{
	const gchar *uri = f->daemon->uri;
	const gchar *const texts[] = {"one", "two", "three", "four", "five"};
	g_autoptr(GPtrArray) all = NULL;
	g_autofree gchar *all_ids = NULL;
	struct {
		const gchar *after; /* an index into all, or "0" */
		const gchar *limit;
		const gchar *expected; /* the texts */
	} cases[] = {
	    {"0", "2", "one,two"},
	    {"#1", "2", "three,four"},
	    {"#3", NULL, "five"},
	    {"#4", NULL, ""},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(texts); i++)
		send_text(uri, "paula", "pages", texts[i]);
	all = history_json(f, "pages");
	g_assert_cmpuint(all->len, ==, G_N_ELEMENTS(texts));
	all_ids = ids_of(all);
	g_test_message("ids %s", all_ids);

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		g_autofree gchar *after = NULL;
		g_autoptr(GPtrArray) page = NULL;
		g_autoptr(GString) got = g_string_new(NULL);

		if (cases[i].after[0] == '#')
			after = g_strdup_printf(
			    "%" G_GINT64_FORMAT,
			    json_object_get_int_member(
				g_ptr_array_index(all,
						  g_ascii_strtoull(cases[i].after + 1, NULL, 10)),
				"id"));
		else
			after = g_strdup(cases[i].after);
		if (cases[i].limit != NULL)
			g_assert_cmpint(run(&out,
					    &err,
					    "--server",
					    uri,
					    "--json",
					    "history",
					    "--room",
					    "pages",
					    "--after",
					    after,
					    "--limit",
					    cases[i].limit),
					==,
					0);
		else
			g_assert_cmpint(run(&out,
					    &err,
					    "--server",
					    uri,
					    "--json",
					    "history",
					    "--room",
					    "pages",
					    "--after",
					    after),
					==,
					0);
		page = parse_json_lines(out);
		for (guint j = 0; j < page->len; j++)
			g_string_append_printf(
			    got,
			    "%s%s",
			    j > 0 ? "," : "",
			    json_object_get_string_member(g_ptr_array_index(page, j), "text"));
		g_assert_cmpstr(got->str, ==, cases[i].expected);
	}
}

/* usage errors of history, found before any connection */
static void
test_history_usage(void)
{
	g_autofree gchar *bad = closed_uri();
	struct {
		const gchar *args[7];
		const gchar *mention[2];
	} cases[] = {
	    {{"history", "--before", "3", "--after", "1"}, {"--before", "--after"}},
	    {{"history", "--after", "1", "--before", "3"}, {"--before", "--after"}},
	    {{"history", "--room", "general", "--with", "bob"}, {"--room", "--with"}},
	    {{"history", "--with", "bob", "--before", "2", "--after", "0"}, {"--after", NULL}},
	    {{"history", "--limit", "501"}, {"--limit", NULL}},
	    {{"history", "--limit", "0"}, {"--limit", NULL}},
	    {{"history", "--limit", "-1"}, {"--limit", NULL}},
	    {{"history", "--after", "-1"}, {"--after", NULL}},
	    {{"history", "--after", "soon"}, {"--after", NULL}},
	    {{"history", "--before", "0"}, {"--before", NULL}},
	    {{"history", "--with"}, {"--with", NULL}},
	    {{"history", "--with", "bob", "extra"}, {"extra", NULL}},
	};

	for (gsize i = 0; i < G_N_ELEMENTS(cases); i++) {
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;
		const gchar *const *a = cases[i].args;

		/* a closed port: connecting would be exit status 2 */
		g_assert_cmpint(
		    run(&out, &err, "--server", bad, a[0], a[1], a[2], a[3], a[4], a[5], a[6]),
		    ==,
		    1);
		for (guint j = 0; j < G_N_ELEMENTS(cases[i].mention) && cases[i].mention[j] != NULL;
		     j++)
			g_assert_nonnull(strstr(err, cases[i].mention[j]));
		g_assert_nonnull(strstr(err, "--help"));
		g_assert_cmpstr(out, ==, "");
	}
}

static void
test_send_stdin(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GPtrArray) messages = NULL;
	JsonObject *msg;

	g_assert_cmpint(run_input("piped from a script\n",
				  &out,
				  &err,
				  "--server",
				  f->daemon->uri,
				  "--nick",
				  "carol",
				  "send"),
			==,
			0);
	messages = history_json(f, "general");
	msg = last_message(messages);
	/* the final newline of `echo` is not part of the text */
	g_assert_cmpstr(json_object_get_string_member(msg, "text"), ==, "piped from a script");
	g_assert_cmpstr(json_object_get_string_member(msg, "from"), ==, "carol");
	g_assert_cmpstr(json_object_get_string_member(msg, "kind"), ==, "text");

	/* nothing on stdin is nothing to send: a usage error */
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(
	    run_input("", &out, &err, "--server", f->daemon->uri, "--nick", "carol", "send"),
	    ==,
	    1);
}

static void
test_send_code(Fixture *f, gconstpointer data)
{
	const gchar *diff = "diff --git a/main.c b/main.c\n"
			    "--- a/main.c\n"
			    "+++ b/main.c\n"
			    "@@ -1 +1 @@\n"
			    "-int main(void);\n"
			    "+int main(int argc, char **argv);\n";
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *hout = NULL;
	g_autofree gchar *herr = NULL;
	g_autoptr(GPtrArray) messages = NULL;
	g_autoptr(GPtrArray) acks = NULL;
	JsonObject *msg;

	g_assert_cmpint(run_input(diff,
				  &out,
				  &err,
				  "--server",
				  f->daemon->uri,
				  "--nick",
				  "dave",
				  "--json",
				  "send",
				  "--code",
				  "diff"),
			==,
			0);
	/* with --json, send prints what the server stored */
	acks = parse_json_lines(out);
	g_assert_cmpuint(acks->len, ==, 1);

	messages = history_json(f, "general");
	msg = last_message(messages);
	g_assert_cmpstr(json_object_get_string_member(msg, "kind"), ==, "code");
	g_assert_cmpstr(json_object_get_string_member(msg, "lang"), ==, "diff");
	/* a snippet arrives byte for byte */
	g_assert_cmpstr(json_object_get_string_member(msg, "text"), ==, diff);
	g_assert_cmpint(json_object_get_int_member(msg, "id"),
			==,
			json_object_get_int_member(g_ptr_array_index(acks, 0), "id"));

	/* and reads as a header and indented lines */
	g_assert_cmpint(run(&hout, &herr, "--server", f->daemon->uri, "history"), ==, 0);
	g_assert_nonnull(
	    strstr(hout, "#general <dave> code (diff):\n    diff --git a/main.c b/main.c\n"));
}

static void
test_send_file(Fixture *f, gconstpointer data)
{
	const gchar *content = "def main():\n    print('hi')\n";
	g_autoptr(GError) error = NULL;
	g_autofree gchar *dir = g_dir_make_tmp("codechat-cli-XXXXXX", &error);
	g_autofree gchar *path = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *out2 = NULL;
	g_autofree gchar *err2 = NULL;
	g_autoptr(GPtrArray) messages = NULL;
	JsonObject *msg;

	g_assert_no_error(error);
	path = g_build_filename(dir, "hello.py", NULL);
	g_file_set_contents(path, content, -1, &error);
	g_assert_no_error(error);

	g_assert_cmpint(
	    run(&out, &err, "--server", f->daemon->uri, "--nick", "erin", "send", "--file", path),
	    ==,
	    0);
	messages = history_json(f, "general");
	msg = last_message(messages);
	g_assert_cmpstr(json_object_get_string_member(msg, "kind"), ==, "code");
	g_assert_cmpstr(json_object_get_string_member(msg, "filename"), ==, "hello.py");
	g_assert_cmpstr(json_object_get_string_member(msg, "lang"), ==, "python");
	g_assert_cmpstr(json_object_get_string_member(msg, "text"), ==, content);

	/* --code says better than the name */
	g_assert_cmpint(run(&out2,
			    &err2,
			    "--server",
			    f->daemon->uri,
			    "--nick",
			    "erin",
			    "send",
			    "--code",
			    "text",
			    "--file",
			    path),
			==,
			0);
	g_clear_pointer(&messages, g_ptr_array_unref);
	messages = history_json(f, "general");
	msg = last_message(messages);
	g_assert_cmpstr(json_object_get_string_member(msg, "lang"), ==, "text");
	g_assert_cmpstr(json_object_get_string_member(msg, "filename"), ==, "hello.py");

	g_unlink(path);
	g_rmdir(dir);
}

/* refusals by the server: exit status 3 and the server's code */
static void
test_send_unknown_nick(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run(&out,
			    &err,
			    "--server",
			    f->daemon->uri,
			    "--nick",
			    "frank",
			    "send",
			    "--to",
			    "neverseen",
			    "psst"),
			==,
			3);
	g_assert_nonnull(strstr(err, "codechat: "));
	g_assert_nonnull(strstr(err, "(unknown-nick)"));
}

static void
test_send_bad_room(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run(&out,
			    &err,
			    "--server",
			    f->daemon->uri,
			    "--nick",
			    "grace",
			    "send",
			    "--room",
			    "Not A Room!",
			    "hi"),
			==,
			3);
	g_assert_nonnull(strstr(err, "(bad-room)"));
}

static void
test_send_too_long(Fixture *f, gconstpointer data)
{
	g_autofree gchar *text = g_strnfill(CODECHAT_MAX_TEXT + 1, 'x');
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *out2 = NULL;
	g_autofree gchar *err2 = NULL;
	g_autoptr(GPtrArray) messages = NULL;

	g_assert_cmpint(
	    run_input(text, &out, &err, "--server", f->daemon->uri, "--nick", "heidi", "send"),
	    ==,
	    3);
	g_assert_nonnull(strstr(err, "(too-long)"));

	/* the limit itself is fine */
	text[CODECHAT_MAX_TEXT] = '\0';
	g_assert_cmpint(
	    run_input(text, &out2, &err2, "--server", f->daemon->uri, "--nick", "heidi", "send"),
	    ==,
	    0);
	messages = history_json(f, "general");
	g_assert_cmpuint(messages->len, ==, 1);
	g_assert_cmpuint(strlen(json_object_get_string_member(last_message(messages), "text")),
			 ==,
			 CODECHAT_MAX_TEXT);
}

static void
test_cannot_connect(void)
{
	g_autofree gchar *uri = closed_uri();
	const gchar *const commands[] = {"send", "history", "watch", "rooms", "who", "status"};

	for (gsize i = 0; i < G_N_ELEMENTS(commands); i++) {
		g_autofree gchar *out = NULL;
		g_autofree gchar *err = NULL;

		g_assert_cmpint(run_input("hi", &out, &err, "--server", uri, commands[i]), ==, 2);
		g_assert_nonnull(strstr(err, "cannot connect"));
		g_assert_cmpstr(out, ==, "");
	}
}

/* a server that answers, but not with a WebSocket */
static void
test_bad_handshake(Fixture *f, gconstpointer data)
{
	g_autofree gchar *uri =
	    g_strdup_printf("ws://127.0.0.1:%u/not-the-endpoint", f->daemon->port);
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(run(&out, &err, "--server", uri, "rooms"), ==, 2);
	g_assert_nonnull(strstr(err, "cannot connect"));
}

static void
test_watch(Fixture *f, gconstpointer data)
{
	const gchar *const rooms[] = {"general", NULL};
	g_autoptr(Watcher) w = watcher_start(f->daemon->uri, "watcher", rooms);

	send_text(f->daemon->uri, "sender", "general", "live from another client");
	watcher_expect(w, "general", "sender", "live from another client");
	send_text(f->daemon->uri, "sender", "general", "and another");
	watcher_expect(w, "general", "sender", "and another");
	watcher_stop(w);
	/* the watcher left: a clean close ends its session */
	wait_member(f->daemon->uri, "general", "watcher", FALSE);
}

/* the connection drops; what was said meanwhile is printed once it is
 * back, in order, and nothing twice */
static void
test_watch_resume(Fixture *f, gconstpointer data)
{
	const gchar *const rooms[] = {"general", "dev", NULL};
	g_autoptr(CodechatTestRelay) relay = codechat_test_relay_new(f->daemon->port);
	g_autofree gchar *relay_uri = g_strdup_printf("ws://127.0.0.1:%u/v1/ws", relay->port);
	g_autoptr(Watcher) w = NULL;
	const gchar *uri = f->daemon->uri;
	const gchar *err;

	w = watcher_start_full(relay_uri, "resumer", rooms, WATCH_CAPTURE_STDERR);
	send_text(uri, "talker", "general", "before the cut");
	watcher_expect(w, "general", "talker", "before the cut");

	/* cut, and keep refusing until the missed messages are stored */
	relay->refuse = TRUE;
	codechat_test_relay_cut(relay);
	wait_member(uri, "general", "resumer", FALSE);
	send_text(uri, "talker", "general", "missed one");
	send_text(uri, "talker", "dev", "missed in dev");
	send_text(uri, "talker", "general", "missed two");
	relay->refuse = FALSE;

	/* watch reconnects by itself (backoff 1 s, 2 s, …) */
	wait_member(uri, "general", "resumer", TRUE);
	wait_member(uri, "dev", "resumer", TRUE);
	g_assert_cmpuint(relay->accepted, >=, 2);
	send_text(uri, "talker", "general", "after the cut");

	watcher_expect(w, "general", "talker", "missed one");
	/* rooms replay independently: dev's message may come first or not */
	{
		g_autoptr(JsonObject) a = watcher_read(w);
		g_autoptr(JsonObject) b = watcher_read(w);
		JsonObject *dev =
		    g_strcmp0(json_object_get_string_member(a, "room"), "dev") == 0 ? a : b;
		JsonObject *gen = dev == a ? b : a;

		g_assert_cmpstr(json_object_get_string_member(dev, "room"), ==, "dev");
		g_assert_cmpstr(json_object_get_string_member(dev, "text"), ==, "missed in dev");
		g_assert_cmpstr(json_object_get_string_member(gen, "room"), ==, "general");
		g_assert_cmpstr(json_object_get_string_member(gen, "text"), ==, "missed two");
	}
	watcher_expect(w, "general", "talker", "after the cut");
	/* nothing was printed twice: the next line is the next message */
	send_text(uri, "talker", "general", "sentinel");
	watcher_expect(w, "general", "talker", "sentinel");
	watcher_stop(w);

	/* what was missed, room by room, on stderr */
	err = watcher_stderr(w);
	g_assert_nonnull(strstr(err, "codechat: connection lost"));
	g_assert_nonnull(strstr(err, "codechat: resumed #general, 2 missed messages\n"));
	g_assert_nonnull(strstr(err, "codechat: resumed #dev, 1 missed message\n"));
}

/* more was missed than one replay page holds: joined says truncated,
 * and watch pages the gap from history before the replay, in order */
static void
test_watch_resume_truncated(Fixture *f, gconstpointer data)
{
	const gchar *const rooms[] = {"general", NULL};
	const guint n_missed = CODECHAT_MAX_PAGE + 20;
	g_autoptr(CodechatTestRelay) relay = codechat_test_relay_new(f->daemon->port);
	g_autofree gchar *relay_uri = g_strdup_printf("ws://127.0.0.1:%u/v1/ws", relay->port);
	g_autoptr(Watcher) w = NULL;
	g_autoptr(CodechatTestWs) poster = NULL;
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) joined = NULL;
	const gchar *uri = f->daemon->uri;

	w = watcher_start(relay_uri, "pager", rooms);
	send_text(uri, "bulk", "general", "before the cut");
	watcher_expect(w, "general", "bulk", "before the cut");

	relay->refuse = TRUE;
	codechat_test_relay_cut(relay);
	wait_member(uri, "general", "pager", FALSE);

	poster = codechat_test_ws_new_client(uri, "bulk", &welcome);
	codechat_test_ws_send_text(poster,
				   "{\"type\":\"join\",\"room\":\"general\",\"ref\":\"j\"}");
	joined = codechat_test_ws_expect(poster, "joined");
	for (guint i = 0; i < n_missed; i++) {
		g_autoptr(JsonObject) ack = NULL;

		codechat_test_ws_sendf(
		    poster,
		    "{\"type\":\"say\",\"room\":\"general\",\"text\":\"missed %u\","
		    "\"ref\":\"s%u\"}",
		    i,
		    i);
		ack = codechat_test_ws_expect(poster, "message");
	}
	relay->refuse = FALSE;
	wait_member(uri, "general", "pager", TRUE);
	/* live while watch may still be paging: it must wait its turn */
	codechat_test_ws_send_text(
	    poster,
	    "{\"type\":\"say\",\"room\":\"general\",\"text\":\"live after\"}");

	for (guint i = 0; i < n_missed; i++) {
		g_autofree gchar *text = g_strdup_printf("missed %u", i);

		watcher_expect(w, "general", "bulk", text);
	}
	watcher_expect(w, "general", "bulk", "live after");
	send_text(uri, "other", "general", "sentinel");
	watcher_expect(w, "general", "other", "sentinel");
	watcher_stop(w);
}

/* the epoch of the daemon at @uri, by `codechat --json status` */
static gchar *
server_epoch(const gchar *uri)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GPtrArray) objects = NULL;
	const gchar *epoch;

	g_assert_cmpint(run(&out, &err, "--server", uri, "--nick", "epocher", "--json", "status"),
			==,
			0);
	objects = parse_json_lines(out);
	g_assert_cmpuint(objects->len, ==, 1);
	epoch = json_object_get_string_member(g_ptr_array_index(objects, 0), "epoch");
	g_assert_nonnull(epoch);
	return g_strdup(epoch);
}

static void
track_daemon(CodechatTestDaemon *daemon)
{
	const gchar *pid = g_subprocess_get_identifier(daemon->proc);

	g_assert_nonnull(pid);
	daemon_pid = (pid_t)g_ascii_strtoll(pid, NULL, 10);
	signal(SIGABRT, abort_handler);
}

/* the next message watch prints, which must be @text in @room; returns its id */
static gint64
watcher_expect_id(Watcher *w, const gchar *room, const gchar *text)
{
	g_autoptr(JsonObject) msg = watcher_read(w);

	g_assert_cmpstr(json_object_get_string_member(msg, "type"), ==, "message");
	g_assert_cmpstr(json_object_get_string_member(msg, "room"), ==, room);
	g_assert_cmpstr(json_object_get_string_member(msg, "text"), ==, text);
	return json_object_get_int_member(msg, "id");
}

typedef struct {
	gboolean quiet;
	gboolean new_store; /* restart on a fresh data dir: another epoch */
} RestartCase;

static const RestartCase restart_same_store = {FALSE, FALSE};
static const RestartCase restart_quiet = {TRUE, FALSE};
static const RestartCase restart_new_store = {FALSE, TRUE};

/* the daemon restarts on the same address while watch runs: watch
 * reconnects by itself and resumes each room, replaying what was said
 * while it was away, and prints every message exactly once, in order;
 * it says so on stderr, unless --quiet.  With the same data dir the
 * epoch and the ids go on; with a fresh one, the epoch changes and watch
 * drops the ids it knew and replays the new store from its start. */
static void
test_watch_restart(gconstpointer data)
{
	const RestartCase *c = data;
	gboolean quiet = c->quiet;
	const gchar *const rooms[] = {"general", "dev", NULL};
	g_autoptr(CodechatTestDaemon) first = NULL;
	g_autoptr(CodechatTestDaemon) second = NULL;
	g_autoptr(Watcher) w = NULL;
	g_autofree gchar *uri = NULL;
	g_autofree gchar *epoch_before = NULL;
	g_autofree gchar *epoch_after = NULL;
	const gchar *err;
	gint64 general_id;
	gint64 dev_id;
	gint64 id;

	first = codechat_test_daemon_start(NULL);
	track_daemon(first);
	uri = g_strdup(first->uri);
	w = watcher_start_full(uri,
			       "survivor",
			       rooms,
			       WATCH_CAPTURE_STDERR | (quiet ? WATCH_QUIET : 0));
	send_text(uri, "talker", "general", "before 1");
	send_text(uri, "talker", "dev", "before dev");
	send_text(uri, "talker", "general", "before 2");
	id = watcher_expect_id(w, "general", "before 1");
	dev_id = watcher_expect_id(w, "dev", "before dev");
	general_id = watcher_expect_id(w, "general", "before 2");
	g_assert_cmpint(general_id, >, id);
	epoch_before = server_epoch(uri);

	/* SIGTERM: the daemon closes the sessions with 1001 and exits */
	daemon_pid = 0;
	g_assert_cmpint(codechat_test_daemon_stop(first), ==, 0);
	/* watch waits at least 0.8 s before it tries again: freeze it
	 * before that, so that what follows is surely missed, then replayed */
	g_subprocess_send_signal(w->proc, SIGSTOP);

	/* the same port, and the same data dir (a later --data-dir wins) or
	 * a fresh one */
	{
		g_autofree gchar *port = g_strdup_printf("127.0.0.1:%u", first->port);
		const gchar *const args[] = {"--listen",
					     port,
					     c->new_store ? NULL : "--data-dir",
					     first->data_dir,
					     NULL};

		second = codechat_test_daemon_start(args);
	}
	track_daemon(second);
	g_assert_cmpuint(second->port, ==, first->port);
	g_assert_cmpstr(second->uri, ==, uri);
	epoch_after = server_epoch(uri);
	if (c->new_store) {
		g_assert_cmpstr(epoch_after, !=, epoch_before);
		/* ids start again from 1 */
		general_id = 0;
		dev_id = 0;
	} else {
		/* the durable store: the same history, the same epoch */
		g_assert_cmpstr(epoch_after, ==, epoch_before);
	}

	send_text(uri, "talker", "general", "missed 1");
	send_text(uri, "talker", "dev", "missed dev");
	send_text(uri, "talker", "general", "missed 2");
	g_subprocess_send_signal(w->proc, SIGCONT);
	{
		gint64 seen_general = general_id;
		guint n_general = 0;
		gboolean seen_dev = FALSE;

		/* rooms resume independently: only the order within a room counts */
		for (guint i = 0; i < 3; i++) {
			g_autoptr(JsonObject) msg = watcher_read(w);
			const gchar *room = json_object_get_string_member(msg, "room");
			const gchar *text = json_object_get_string_member(msg, "text");

			id = json_object_get_int_member(msg, "id");
			if (g_strcmp0(room, "dev") == 0) {
				g_assert_false(seen_dev);
				g_assert_cmpstr(text, ==, "missed dev");
				/* ids go on where they were: nothing reused */
				g_assert_cmpint(id, ==, dev_id + 1);
				seen_dev = TRUE;
			} else {
				g_assert_cmpstr(room, ==, "general");
				g_assert_cmpstr(text, ==, n_general == 0 ? "missed 1" : "missed 2");
				g_assert_cmpint(id, ==, seen_general + 1);
				seen_general = id;
				n_general++;
			}
		}
		g_assert_cmpuint(n_general, ==, 2);
		g_assert_true(seen_dev);
		general_id = seen_general;
	}

	/* live again; and nothing came twice: the next line is the next message */
	wait_member(uri, "general", "survivor", TRUE);
	wait_member(uri, "dev", "survivor", TRUE);
	send_text(uri, "talker", "general", "live");
	g_assert_cmpint(watcher_expect_id(w, "general", "live"), ==, general_id + 1);
	watcher_stop(w);

	err = watcher_stderr(w);
	if (quiet) {
		g_assert_cmpstr(err, ==, "");
	} else {
		g_assert_nonnull(strstr(err, "codechat: connection lost"));
		g_assert_nonnull(strstr(err, "; reconnecting in "));
		g_assert_nonnull(strstr(err, "codechat: resumed #general, 2 missed messages\n"));
		g_assert_nonnull(strstr(err, "codechat: resumed #dev, 1 missed message\n"));
		if (c->new_store)
			g_assert_nonnull(strstr(err, "history was reset: starting over\n"));
		else
			g_assert_null(strstr(err, "history was reset"));
	}

	daemon_pid = 0;
	g_assert_cmpint(codechat_test_daemon_stop(second), ==, 0);
	/* the first daemon's data dir is the second's: remove it last */
	g_clear_pointer(&second, codechat_test_daemon_free);
	g_clear_pointer(&first, codechat_test_daemon_free);
}

/* a room the server refuses ends watch: exit status 3, and the server's code */
static void
test_watch_bad_room(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	g_assert_cmpint(
	    run(&out, &err, "--server", f->daemon->uri, "watch", "--room", "Not A Room!"),
	    ==,
	    3);
	g_assert_nonnull(strstr(err, "(bad-room)"));
	g_assert_cmpstr(out, ==, "");
}

/* the server is full when watch starts: `overloaded` means "try again
 * later", so watch waits and retries instead of giving up */
static void
test_watch_overloaded(void)
{
	const gchar *const args[] = {"--max-connections", "2", NULL};
	const gchar *const rooms[] = {"general", NULL};
	g_autoptr(CodechatTestDaemon) daemon = codechat_test_daemon_start(args);
	g_autoptr(CodechatTestWs) filler1 = NULL;
	g_autoptr(CodechatTestWs) filler2 = NULL;
	g_autoptr(JsonObject) welcome1 = NULL;
	g_autoptr(JsonObject) welcome2 = NULL;
	g_autoptr(Watcher) w = NULL;
	gint64 deadline;
	const gchar *err;

	track_daemon(daemon);
	filler1 = codechat_test_ws_new_client(daemon->uri, "filler1", &welcome1);
	filler2 = codechat_test_ws_new_client(daemon->uri, "filler2", &welcome2);
	w = watcher_start_full(daemon->uri, "patient", rooms, WATCH_CAPTURE_STDERR | WATCH_NO_WAIT);

	/* refused, and it says it will try again, without exiting */
	deadline = g_get_monotonic_time() + WAIT_TIMEOUT_MS * 1000;
	while (strstr(w->err->text->str, "; retrying in ") == NULL) {
		g_assert_false(w->err->eof);
		g_assert_cmpint(g_get_monotonic_time(), <, deadline);
		sleep_ms(POLL_INTERVAL_MS);
	}
	g_clear_pointer(&filler1, codechat_test_ws_free);
	g_clear_pointer(&filler2, codechat_test_ws_free);

	/* room again: it connects and watches */
	wait_member(daemon->uri, "general", "patient", TRUE);
	send_text(daemon->uri, "talker", "general", "welcome in");
	watcher_expect(w, "general", "talker", "welcome in");
	watcher_stop(w);
	err = watcher_stderr(w);
	g_assert_nonnull(strstr(err, "too many connections"));
	g_assert_nonnull(strstr(err, "(overloaded); retrying in "));

	daemon_pid = 0;
	g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
}

static void
test_rooms_who(Fixture *f, gconstpointer data)
{
	const gchar *const rooms[] = {"alpha", NULL};
	g_autoptr(Watcher) w = NULL;
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *who_out = NULL;
	g_autofree gchar *who_err = NULL;
	g_autofree gchar *beta_out = NULL;
	g_autofree gchar *beta_err = NULL;
	g_autofree gchar *plain_out = NULL;
	g_autofree gchar *plain_err = NULL;
	g_autoptr(GPtrArray) list = NULL;
	g_autoptr(GPtrArray) members = NULL;
	gboolean seen_alpha = FALSE;
	gboolean seen_beta = FALSE;

	send_text(f->daemon->uri, "ivan", "alpha", "one in alpha");
	send_text(f->daemon->uri, "ivan", "beta", "one in beta");
	send_text(f->daemon->uri, "ivan", "beta", "two in beta");
	w = watcher_start(f->daemon->uri, "judy", rooms);

	g_assert_cmpint(run(&out, &err, "--server", f->daemon->uri, "--json", "rooms"), ==, 0);
	list = parse_json_lines(out);
	for (guint i = 0; i < list->len; i++) {
		JsonObject *room = g_ptr_array_index(list, i);
		const gchar *name = json_object_get_string_member(room, "name");

		if (g_strcmp0(name, "alpha") == 0) {
			seen_alpha = TRUE;
			g_assert_cmpint(json_object_get_int_member(room, "members"), ==, 1);
			g_assert_cmpint(json_object_get_int_member(room, "last_id"), ==, 1);
		} else if (g_strcmp0(name, "beta") == 0) {
			seen_beta = TRUE;
			g_assert_cmpint(json_object_get_int_member(room, "members"), ==, 0);
			g_assert_cmpint(json_object_get_int_member(room, "last_id"), ==, 2);
		}
	}
	g_assert_true(seen_alpha);
	g_assert_true(seen_beta);

	g_assert_cmpint(run(&plain_out, &plain_err, "--server", f->daemon->uri, "rooms"), ==, 0);
	g_assert_nonnull(strstr(plain_out, "#alpha"));
	g_assert_nonnull(strstr(plain_out, "#beta"));

	g_assert_cmpint(run(&who_out,
			    &who_err,
			    "--server",
			    f->daemon->uri,
			    "--nick",
			    "asker",
			    "--json",
			    "who",
			    "--room",
			    "alpha"),
			==,
			0);
	members = parse_json_lines(who_out);
	g_assert_cmpuint(members->len, ==, 1);
	g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(members, 0), "nick"),
			==,
			"judy");
	g_assert_cmpstr(json_object_get_string_member(g_ptr_array_index(members, 0), "room"),
			==,
			"alpha");

	g_assert_cmpint(
	    run(&beta_out, &beta_err, "--server", f->daemon->uri, "who", "--room", "beta"),
	    ==,
	    0);
	g_assert_cmpstr(beta_out, ==, "");
	watcher_stop(w);
}

static void
test_environment(Fixture *f, gconstpointer data)
{
	g_autofree gchar *bad = closed_uri();
	g_autofree gchar *env_server = g_strdup_printf("CODECHAT_SERVER=%s", f->daemon->uri);
	g_autofree gchar *env_bad_server = g_strdup_printf("CODECHAT_SERVER=%s", bad);
	const gchar *const env[] = {env_server, "CODECHAT_NICK=envnick", NULL};
	const gchar *const env_bad[] = {env_bad_server, "CODECHAT_NICK=envnick", NULL};
	const gchar *const env_room[] = {env_server, "CODECHAT_ROOM=envroom", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GPtrArray) messages = NULL;
	JsonObject *msg;

	/* the environment is honoured */
	g_assert_cmpint(run_env(env, NULL, &out, &err, "send", "from the environment", NULL),
			==,
			0);
	messages = history_json(f, "general");
	msg = last_message(messages);
	g_assert_cmpstr(json_object_get_string_member(msg, "from"), ==, "envnick");
	g_assert_cmpstr(json_object_get_string_member(msg, "text"), ==, "from the environment");

	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(run_env(env_bad, NULL, &out, &err, "rooms", NULL), ==, 2);

	/* flags beat the environment */
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(run_env(env_bad,
				NULL,
				&out,
				&err,
				"--server",
				f->daemon->uri,
				"--nick",
				"flagnick",
				"send",
				"from the flags",
				NULL),
			==,
			0);
	g_clear_pointer(&messages, g_ptr_array_unref);
	messages = history_json(f, "general");
	msg = last_message(messages);
	g_assert_cmpstr(json_object_get_string_member(msg, "from"), ==, "flagnick");
	g_assert_cmpstr(json_object_get_string_member(msg, "text"), ==, "from the flags");

	/* CODECHAT_ROOM is the default room, --room beats it */
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(run_env(env_room,
				NULL,
				&out,
				&err,
				"--nick",
				"roomer",
				"send",
				"in the env room",
				NULL),
			==,
			0);
	g_clear_pointer(&messages, g_ptr_array_unref);
	messages = history_json(f, "envroom");
	g_assert_cmpuint(messages->len, ==, 1);
	g_assert_cmpstr(json_object_get_string_member(last_message(messages), "text"),
			==,
			"in the env room");
	g_clear_pointer(&out, g_free);
	g_clear_pointer(&err, g_free);
	g_assert_cmpint(run_env(env_room,
				NULL,
				&out,
				&err,
				"--nick",
				"roomer",
				"send",
				"--room",
				"other",
				"elsewhere",
				NULL),
			==,
			0);
	g_clear_pointer(&messages, g_ptr_array_unref);
	messages = history_json(f, "envroom");
	g_assert_cmpuint(messages->len, ==, 1);
}

/* the token goes to the server, never to the log */
static void
test_token_not_logged(Fixture *f, gconstpointer data)
{
	const gchar *const env[] = {"CODECHAT_TOKEN=s3cr3t-t0ken-value", NULL};
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;

	run_env(env,
		NULL,
		&out,
		&err,
		"--server",
		f->daemon->uri,
		"--nick",
		"kim",
		"-v",
		"--json",
		"status",
		NULL);
	/* -v did log, to stderr */
	g_assert_nonnull(strstr(err, " debug codechat: "));
	g_assert_null(strstr(err, "s3cr3t-t0ken-value"));
	g_assert_null(strstr(out, "s3cr3t-t0ken-value"));
}

static void
test_status(Fixture *f, gconstpointer data)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autofree gchar *jout = NULL;
	g_autofree gchar *jerr = NULL;
	g_autoptr(GPtrArray) objects = NULL;
	JsonObject *status;
	JsonObject *limits;

	send_text(f->daemon->uri, "leo", "general", "so that there is a room");
	g_assert_cmpint(run(&out, &err, "--server", f->daemon->uri, "--nick", "leo", "status"),
			==,
			0);
	g_assert_nonnull(strstr(out, codechat_server_string()));
	g_assert_nonnull(strstr(out, f->daemon->uri));
	g_assert_nonnull(strstr(out, "leo"));

	g_assert_cmpint(
	    run(&jout, &jerr, "--server", f->daemon->uri, "--nick", "leo", "--json", "status"),
	    ==,
	    0);
	objects = parse_json_lines(jout);
	g_assert_cmpuint(objects->len, ==, 1);
	status = g_ptr_array_index(objects, 0);
	g_assert_cmpstr(json_object_get_string_member(status, "server"),
			==,
			codechat_server_string());
	g_assert_cmpstr(json_object_get_string_member(status, "url"), ==, f->daemon->uri);
	g_assert_cmpstr(json_object_get_string_member(status, "nick"), ==, "leo");
	g_assert_true(json_object_has_member(status, "epoch"));
	g_assert_cmpint(json_object_get_int_member(status, "rooms"), ==, 1);
	limits = json_object_get_object_member(status, "limits");
	g_assert_nonnull(limits);
	g_assert_cmpint(json_object_get_int_member(limits, "max_text"), ==, CODECHAT_MAX_TEXT);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

#define ADD(name, func)                                                                            \
	g_test_add("/codechat/cli/" name, Fixture, NULL, fixture_setup, func, fixture_teardown)

	g_test_add_func("/codechat/cli/version", test_version);
	g_test_add_func("/codechat/cli/help", test_help);
	g_test_add_func("/codechat/cli/unknown-command", test_unknown_command);
	g_test_add_func("/codechat/cli/bad-option", test_bad_option);
	g_test_add_func("/codechat/cli/cannot-connect", test_cannot_connect);
	g_test_add_func("/codechat/cli/history-usage", test_history_usage);
	ADD("send-history", test_send_history);
	ADD("history-with", test_history_with);
	ADD("history-after", test_history_after);
	ADD("send-stdin", test_send_stdin);
	ADD("send-code", test_send_code);
	ADD("send-file", test_send_file);
	ADD("send-unknown-nick", test_send_unknown_nick);
	ADD("send-bad-room", test_send_bad_room);
	ADD("send-too-long", test_send_too_long);
	ADD("bad-handshake", test_bad_handshake);
	ADD("watch", test_watch);
	ADD("watch-bad-room", test_watch_bad_room);
	ADD("watch-resume", test_watch_resume);
	g_test_add("/codechat/cli/watch-resume-truncated",
		   Fixture,
		   NULL,
		   fixture_setup_unlimited,
		   test_watch_resume_truncated,
		   fixture_teardown);
	g_test_add_data_func("/codechat/cli/watch-restart",
			     &restart_same_store,
			     test_watch_restart);
	g_test_add_data_func("/codechat/cli/watch-restart-quiet",
			     &restart_quiet,
			     test_watch_restart);
	g_test_add_data_func("/codechat/cli/watch-restart-new-store",
			     &restart_new_store,
			     test_watch_restart);
	g_test_add_func("/codechat/cli/watch-overloaded", test_watch_overloaded);
	ADD("rooms-who", test_rooms_who);
	ADD("environment", test_environment);
	ADD("token-not-logged", test_token_not_logged);
	ADD("status", test_status);

#undef ADD

	return g_test_run();
}
