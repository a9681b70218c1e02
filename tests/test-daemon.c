/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/types.h>
#include <unistd.h>

#include "codechat-protocol.h"
#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"

/*
 * Integration tests of codechatd against PROTOCOL.md: every test starts a
 * real daemon on a free loopback port with a fresh data dir and talks to
 * it over real WebSocket connections.
 */

#define T CODECHAT_TEST_TIMEOUT_MS

/* RFC 6455 section 7.4.1 as amended by IANA; libsoup 3.2 has no name for it */
#define CLOSE_TRY_AGAIN_LATER 1013

/* a daemon left running by a failed assertion would outlive the test
 * program: kill the daemons we started when an assertion aborts */
#define MAX_PIDS 8
static pid_t daemon_pids[MAX_PIDS];

static void
abort_handler(int sig)
{
	for (guint i = 0; i < MAX_PIDS; i++) {
		if (daemon_pids[i] > 0)
			kill(daemon_pids[i], SIGKILL);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static pid_t
pids_track(CodechatTestDaemon *daemon)
{
	const gchar *id = g_subprocess_get_identifier(daemon->proc);

	g_assert_nonnull(id);
	for (guint i = 0; i < MAX_PIDS; i++) {
		if (daemon_pids[i] == 0) {
			daemon_pids[i] = (pid_t)atoi(id);
			return daemon_pids[i];
		}
	}
	g_assert_not_reached();
	return 0;
}

static void
pids_untrack(pid_t pid)
{
	for (guint i = 0; i < MAX_PIDS; i++) {
		if (daemon_pids[i] == pid)
			daemon_pids[i] = 0;
	}
}

/* daemon arguments, the fixtures' user data */
static const gchar *const args_default[] = {NULL};
static const gchar *const args_no_rate[] = {"--rate-limit", "0", NULL};
static const gchar *const args_hello_timeout[] = {"--hello-timeout", "1", NULL};
static const gchar *const args_origin[] = {"--allow-origin",
					   "http://example.test",
					   "--allow-origin",
					   "http://other.test",
					   NULL};
static const gchar *const args_rate_custom[] = {"--rate-limit", "5", "--rate-burst", "7", NULL};
static const gchar *const args_max_conn[] = {"--max-connections", "2", NULL};
static const gchar *const args_keepalive[] = {"--keepalive", "1", NULL};

typedef struct {
	CodechatTestDaemon *daemon; /* (owned) */
	GPtrArray *clients;	    /* (owned) (element-type CodechatTestWs) */
	GPtrArray *raws;	    /* (owned) (element-type CodechatTestRaw) */
	gboolean stopped;	    /* the test ended the daemon itself */
	pid_t pid;		    /* of the daemon, also once it is gone */
} Fixture;

static void
fixture_setup(Fixture *fx, gconstpointer user_data)
{
	fx->daemon = codechat_test_daemon_start((const gchar *const *)user_data);
	fx->pid = pids_track(fx->daemon);
	fx->clients = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_ws_free);
	fx->raws = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_raw_free);
}

static void
fixture_close_clients(Fixture *fx)
{
	/* clients first, so that the daemon does not wait on peers that
	 * nobody pumps while stop() blocks */
	g_ptr_array_set_size(fx->clients, 0);
	g_ptr_array_set_size(fx->raws, 0);
}

static void
fixture_teardown(Fixture *fx, gconstpointer user_data)
{
	fixture_close_clients(fx);
	if (!fx->stopped)
		g_assert_cmpint(codechat_test_daemon_stop(fx->daemon), ==, 0);
	pids_untrack(fx->pid);
	g_clear_pointer(&fx->daemon, codechat_test_daemon_free);
	g_clear_pointer(&fx->clients, g_ptr_array_unref);
	g_clear_pointer(&fx->raws, g_ptr_array_unref);
}

/* clients owned by the fixture */

static CodechatTestWs *
fx_connect(Fixture *fx)
{
	CodechatTestWs *ws = codechat_test_ws_connect_simple(fx->daemon->uri);
	g_ptr_array_add(fx->clients, ws);
	return ws;
}

static CodechatTestWs *
fx_client(Fixture *fx, const gchar *nick)
{
	CodechatTestWs *ws = codechat_test_ws_new_client(fx->daemon->uri, nick, NULL);
	g_ptr_array_add(fx->clients, ws);
	return ws;
}

static CodechatTestRaw *
fx_raw(Fixture *fx)
{
	CodechatTestRaw *raw = codechat_test_raw_connect(fx->daemon->uri);
	g_ptr_array_add(fx->raws, raw);
	return raw;
}

static CodechatTestRaw *
fx_raw_client(Fixture *fx, const gchar *nick)
{
	CodechatTestRaw *raw = fx_raw(fx);
	g_autoptr(JsonObject) welcome = codechat_test_raw_hello(raw, nick);

	g_assert_nonnull(welcome);
	return raw;
}

/* closes a client and waits until the daemon answered the close */
static void
fx_drop(Fixture *fx, CodechatTestWs *ws)
{
	codechat_test_ws_close(ws, SOUP_WEBSOCKET_CLOSE_NORMAL);
	g_assert_cmpint(codechat_test_ws_wait_close(ws, T), ==, SOUP_WEBSOCKET_CLOSE_NORMAL);
	g_ptr_array_remove(fx->clients, ws);
}

/* JSON helpers */

static gchar *
quote(const gchar *str)
{
	g_autoptr(JsonNode) node = json_node_new(JSON_NODE_VALUE);

	json_node_set_string(node, str);
	return json_to_string(node, FALSE);
}

static gchar *
repeat(const gchar *unit, guint n)
{
	GString *str = g_string_sized_new(strlen(unit) * n + 1);

	for (guint i = 0; i < n; i++)
		g_string_append(str, unit);
	return g_string_free(str, FALSE);
}

static JsonArray *
get_array(JsonObject *obj, const gchar *member)
{
	JsonNode *node = json_object_get_member(obj, member);

	if (node == NULL)
		codechat_test_note("member \"%s\" is missing", member);
	g_assert_nonnull(node);
	g_assert_true(JSON_NODE_HOLDS_ARRAY(node));
	return json_node_get_array(node);
}

static gboolean
get_bool(JsonObject *obj, const gchar *member)
{
	JsonNode *node = json_object_get_member(obj, member);

	if (node == NULL)
		codechat_test_note("member \"%s\" is missing", member);
	g_assert_nonnull(node);
	g_assert_true(JSON_NODE_HOLDS_VALUE(node));
	g_assert_cmpint(json_node_get_value_type(node), ==, G_TYPE_BOOLEAN);
	return json_node_get_boolean(node);
}

static gint
strcmp_ptr(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(const gchar *const *)a, *(const gchar *const *)b);
}

/* asserts that the string array @member of @obj holds exactly the given
 * nicks, in any order */
static void G_GNUC_NULL_TERMINATED
assert_nicks(JsonObject *obj, const gchar *member, ...)
{
	g_autoptr(GPtrArray) got = g_ptr_array_new();
	g_autoptr(GPtrArray) want = g_ptr_array_new();
	JsonArray *array = get_array(obj, member);
	const gchar *nick;
	va_list args;

	for (guint i = 0; i < json_array_get_length(array); i++) {
		JsonNode *node = json_array_get_element(array, i);
		g_assert_cmpint(json_node_get_value_type(node), ==, G_TYPE_STRING);
		g_ptr_array_add(got, (gpointer)json_node_get_string(node));
	}
	va_start(args, member);
	while ((nick = va_arg(args, const gchar *)) != NULL)
		g_ptr_array_add(want, (gpointer)nick);
	va_end(args);
	g_ptr_array_sort(got, strcmp_ptr);
	g_ptr_array_sort(want, strcmp_ptr);
	g_assert_cmpuint(got->len, ==, want->len);
	for (guint i = 0; i < got->len; i++)
		g_assert_cmpstr(g_ptr_array_index(got, i), ==, g_ptr_array_index(want, i));
}

static void
assert_ref(JsonObject *obj, const gchar *ref)
{
	if (ref == NULL)
		g_assert_false(json_object_has_member(obj, "ref"));
	else
		g_assert_cmpstr(codechat_test_json_string(obj, "ref"), ==, ref);
}

static void
assert_ts(const gchar *ts)
{
	g_autoptr(GDateTime) dt = NULL;
	g_autoptr(GDateTime) now = g_date_time_new_now_utc();

	g_assert_nonnull(ts);
	g_assert_true(g_regex_match_simple(
	    "^[0-9]{4}-[0-9]{2}-[0-9]{2}T[0-9]{2}:[0-9]{2}:[0-9]{2}\\.[0-9]{3}Z$",
	    ts,
	    0,
	    0));
	dt = g_date_time_new_from_iso8601(ts, NULL);
	g_assert_nonnull(dt);
	/* server time: the daemon runs on this machine */
	g_assert_cmpint(ABS(g_date_time_difference(now, dt)), <, 300 * G_USEC_PER_SEC);
}

/* checks a `message`; @room or @to names where it went, @from (if not
 * %NULL) who sent it; returns its id */
static gint64
assert_message(JsonObject *msg,
	       const gchar *room,
	       const gchar *to,
	       const gchar *from,
	       const gchar *text,
	       const gchar *ref)
{
	gint64 id;

	g_assert_cmpstr(codechat_test_json_string(msg, "type"), ==, "message");
	g_assert_cmpstr(codechat_test_json_string(msg, "room"), ==, room);
	g_assert_cmpstr(codechat_test_json_string(msg, "to"), ==, to);
	if (from != NULL)
		g_assert_cmpstr(codechat_test_json_string(msg, "from"), ==, from);
	else
		g_assert_nonnull(codechat_test_json_string(msg, "from"));
	if (text != NULL)
		g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, text);
	assert_ts(codechat_test_json_string(msg, "ts"));
	g_assert_nonnull(codechat_test_json_string(msg, "kind"));
	assert_ref(msg, ref);
	id = codechat_test_json_int(msg, "id");
	g_assert_cmpint(id, >=, 1);
	return id;
}

static void
assert_presence(JsonObject *obj, const gchar *room, const gchar *nick, const gchar *event)
{
	g_assert_cmpstr(codechat_test_json_string(obj, "type"), ==, "presence");
	g_assert_cmpstr(codechat_test_json_string(obj, "room"), ==, room);
	g_assert_cmpstr(codechat_test_json_string(obj, "nick"), ==, nick);
	g_assert_cmpstr(codechat_test_json_string(obj, "event"), ==, event);
	assert_ref(obj, NULL);
}

static void
expect_presence(CodechatTestWs *ws, const gchar *room, const gchar *nick, const gchar *event)
{
	g_autoptr(JsonObject) obj = codechat_test_ws_expect(ws, "presence");
	assert_presence(obj, room, nick, event);
}

/* proves that nothing else is queued for @ws: the daemon answers in
 * order, so anything sent to @ws before the ping arrives before the pong */
static void
barrier(CodechatTestWs *ws)
{
	g_autoptr(JsonObject) pong = NULL;

	codechat_test_ws_send_ping(ws, "barrier");
	pong = codechat_test_ws_expect(ws, "pong");
	assert_ref(pong, "barrier");
}

/* requests */

static JsonObject *
join_full(CodechatTestWs *ws, const gchar *room, gint64 since, const gchar *ref)
{
	JsonObject *joined;

	if (since >= 0)
		codechat_test_ws_sendf(
		    ws,
		    "{\"type\":\"join\",\"room\":\"%s\",\"since\":%" G_GINT64_FORMAT
		    ",\"ref\":\"%s\"}",
		    room,
		    since,
		    ref);
	else
		codechat_test_ws_sendf(ws,
				       "{\"type\":\"join\",\"room\":\"%s\",\"ref\":\"%s\"}",
				       room,
				       ref);
	joined = codechat_test_ws_expect(ws, "joined");
	g_assert_cmpstr(codechat_test_json_string(joined, "room"), ==, room);
	assert_ref(joined, ref);
	return joined;
}

static void
join(CodechatTestWs *ws, const gchar *room)
{
	g_autoptr(JsonObject) joined = join_full(ws, room, -1, "join");
	(void)joined;
}

static JsonObject *
say_full(CodechatTestWs *ws, const gchar *room, const gchar *text, const gchar *ref)
{
	g_autofree gchar *qtext = quote(text);
	JsonObject *msg;

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"room\":\"%s\",\"text\":%s,\"ref\":\"%s\"}",
			       room,
			       qtext,
			       ref);
	msg = codechat_test_ws_expect(ws, "message");
	assert_message(msg, room, NULL, NULL, text, ref);
	return msg;
}

/* says @text in @room and returns the id of the acknowledged message */
static gint64
say(CodechatTestWs *ws, const gchar *room, const gchar *text)
{
	g_autoptr(JsonObject) msg = NULL;
	g_autofree gchar *qtext = quote(text);

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"room\":\"%s\",\"text\":%s,\"ref\":\"s\"}",
			       room,
			       qtext);
	msg = codechat_test_ws_expect(ws, "message");
	g_assert_cmpstr(codechat_test_json_string(msg, "from"), !=, NULL);
	return assert_message(msg, room, NULL, codechat_test_json_string(msg, "from"), text, "s");
}

static gint64
dm(CodechatTestWs *ws, const gchar *from, const gchar *to, const gchar *text, const gchar *ref)
{
	g_autoptr(JsonObject) msg = NULL;
	g_autofree gchar *qtext = quote(text);

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"to\":\"%s\",\"text\":%s,\"ref\":\"%s\"}",
			       to,
			       qtext,
			       ref);
	msg = codechat_test_ws_expect(ws, "message");
	return assert_message(msg, NULL, to, from, text, ref);
}

/* posts @n messages "m1".."mN" into a fresh room, pipelined, and checks
 * their ids 1..N; the room must be empty and @ws alone in it */
static void
fill_room(CodechatTestWs *ws, const gchar *room, guint n)
{
	for (guint i = 1; i <= n; i++)
		codechat_test_ws_sendf(
		    ws,
		    "{\"type\":\"say\",\"room\":\"%s\",\"text\":\"m%u\",\"ref\":\"f%u\"}",
		    room,
		    i,
		    i);
	for (guint i = 1; i <= n; i++) {
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(ws, "message");
		g_autofree gchar *text = g_strdup_printf("m%u", i);
		g_autofree gchar *ref = g_strdup_printf("f%u", i);
		g_assert_cmpint(assert_message(msg, room, NULL, NULL, text, ref), ==, i);
	}
}

/* the next @n frames must be the room's messages first..last, in order,
 * with the texts fill_room() gave them and no ref */
static void
expect_replay(CodechatTestWs *ws, const gchar *room, gint64 first, gint64 last)
{
	for (gint64 id = first; id <= last; id++) {
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(ws, "message");
		g_autofree gchar *text = g_strdup_printf("m%" G_GINT64_FORMAT, id);
		g_assert_cmpint(assert_message(msg, room, NULL, NULL, text, NULL), ==, id);
	}
}

static JsonObject *
history(CodechatTestWs *ws, const gchar *args, const gchar *ref)
{
	JsonObject *hist;

	codechat_test_ws_sendf(ws, "{\"type\":\"history\",%s,\"ref\":\"%s\"}", args, ref);
	hist = codechat_test_ws_expect(ws, "history");
	assert_ref(hist, ref);
	return hist;
}

/* a history page of a room filled by fill_room(): ids first..last */
static void
assert_page(JsonObject *hist, const gchar *room, gint64 first, gint64 last, gboolean more)
{
	JsonArray *messages = get_array(hist, "messages");
	guint n = last >= first ? (guint)(last - first + 1) : 0;

	g_assert_cmpstr(codechat_test_json_string(hist, "room"), ==, room);
	g_assert_cmpuint(json_array_get_length(messages), ==, n);
	for (guint i = 0; i < n; i++) {
		JsonObject *msg = json_array_get_object_element(messages, i);
		g_autofree gchar *text = g_strdup_printf("m%" G_GINT64_FORMAT, first + i);
		g_assert_nonnull(msg);
		g_assert_cmpint(assert_message(msg, room, NULL, NULL, text, NULL), ==, first + i);
	}
	g_assert_cmpint(get_bool(hist, "more"), ==, more);
}

static void
expect_history_page(CodechatTestWs *ws,
		    const gchar *room,
		    const gchar *extra,
		    gint64 first,
		    gint64 last,
		    gboolean more)
{
	g_autofree gchar *args =
	    g_strdup_printf("\"room\":\"%s\"%s%s", room, extra[0] != '\0' ? "," : "", extra);
	g_autoptr(JsonObject) hist = history(ws, args, "h");

	codechat_test_note("history %s", args);
	assert_page(hist, room, first, last, more);
}

static void
expect_error(CodechatTestWs *ws, const gchar *code, const gchar *ref)
{
	g_autoptr(JsonObject) err = codechat_test_ws_expect_error(ws, code, ref);
	(void)err;
}

/* the daemon's exit, observed while pumping the clients */

static void
wait_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	gboolean *done = user_data;
	g_autoptr(GError) error = NULL;

	if (!g_subprocess_wait_finish(G_SUBPROCESS(source), res, &error) &&
	    g_error_matches(error, G_IO_ERROR, G_IO_ERROR_CANCELLED))
		return;
	g_assert_no_error(error);
	*done = TRUE;
}

/* when a connection ended unexpectedly: says whether the daemon died */
static void
report_daemon_state(Fixture *fx)
{
	gboolean done = FALSE;
	g_autoptr(GCancellable) cancellable = g_cancellable_new();

	g_subprocess_wait_async(fx->daemon->proc, cancellable, wait_cb, &done);
	if (!codechat_test_pump_flag(&done, 1000)) {
		g_cancellable_cancel(cancellable);
		codechat_test_note("the daemon is still running");
		return;
	}
	if (g_subprocess_get_if_signaled(fx->daemon->proc))
		codechat_test_note("the daemon died of signal %d",
				   g_subprocess_get_term_sig(fx->daemon->proc));
	else
		codechat_test_note("the daemon exited with status %d",
				   g_subprocess_get_exit_status(fx->daemon->proc));
	fx->stopped = TRUE;
}

static void
assert_daemon_exits_cleanly(Fixture *fx)
{
	gboolean done = FALSE;

	g_subprocess_wait_async(fx->daemon->proc, NULL, wait_cb, &done);
	g_assert_true(codechat_test_pump_flag(&done, 10000));
	g_assert_true(g_subprocess_get_if_exited(fx->daemon->proc));
	g_assert_cmpint(g_subprocess_get_exit_status(fx->daemon->proc), ==, 0);
	fx->stopped = TRUE;
}

/* ------------------------------------------------------------------ */
/* the program itself */

static void
run_daemon(const gchar *arg, gint *status, gchar **out)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocess) proc =
	    g_subprocess_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_MERGE,
			     &error,
			     codechat_test_daemon_path(),
			     arg,
			     NULL);

	g_assert_no_error(error);
	g_subprocess_communicate_utf8(proc, NULL, NULL, out, NULL, &error);
	g_assert_no_error(error);
	g_assert_true(g_subprocess_get_if_exited(proc));
	*status = g_subprocess_get_exit_status(proc);
}

static void
test_cli_version(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *out = NULL;
	gint status = -1;

	run_daemon("--version", &status, &out);
	g_assert_cmpint(status, ==, 0);
	g_assert_nonnull(strstr(out, PACKAGE_VERSION));
}

static void
test_cli_help(Fixture *fx, gconstpointer user_data)
{
	const gchar *flags[] = {"--listen",
				"--data-dir",
				"--allow-origin",
				"--hello-timeout",
				"--rate-limit",
				"--rate-burst",
				"--max-connections",
				"--keepalive",
				"--version"};
	g_autofree gchar *out = NULL;
	g_autofree gchar *bad = NULL;
	gint status = -1;

	run_daemon("--help", &status, &out);
	g_assert_cmpint(status, ==, 0);
	for (guint i = 0; i < G_N_ELEMENTS(flags); i++) {
		if (strstr(out, flags[i]) == NULL)
			codechat_test_note("--help does not mention %s", flags[i]);
		g_assert_nonnull(strstr(out, flags[i]));
	}
	run_daemon("--no-such-flag", &status, &bad);
	g_assert_cmpint(status, !=, 0);
}

/* ------------------------------------------------------------------ */
/* HTTP and the handshake */

static void
test_healthz(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *url = g_strdup_printf("%s/healthz", fx->daemon->http_base);
	g_autoptr(GBytes) body = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonNode) node = NULL;
	g_autofree gchar *text = NULL;
	guint status = 0;
	gsize len = 0;
	const gchar *data;

	body = codechat_test_http_get(url, &status, NULL);
	g_assert_cmpuint(status, ==, SOUP_STATUS_OK);
	data = g_bytes_get_data(body, &len);
	text = g_strndup(data, len);
	node = json_from_string(text, &error);
	g_assert_no_error(error);
	g_assert_nonnull(node);
	g_assert_true(JSON_NODE_HOLDS_OBJECT(node));
}

static void
assert_refused(Fixture *fx, const gchar *origin)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(CodechatTestWs) ws = NULL;
	guint status = 0;

	ws = codechat_test_ws_try_connect(fx->daemon->uri, origin, NULL, &status, &error);
	g_assert_null(ws);
	g_assert_nonnull(error);
	g_assert_cmpuint(status, ==, SOUP_STATUS_FORBIDDEN);
}

static void
assert_accepted(Fixture *fx, const gchar *origin, const gchar *nick)
{
	g_autoptr(CodechatTestWs) ws = codechat_test_ws_connect(fx->daemon->uri, origin, NULL);
	g_autoptr(JsonObject) welcome = codechat_test_ws_hello(ws, nick);
	(void)welcome;
}

static void
test_origin_default(Fixture *fx, gconstpointer user_data)
{
	/* the allow-list is empty by default: any Origin is refused */
	assert_refused(fx, "http://example.test");
	assert_refused(fx, "http://127.0.0.1");
	/* non-browser clients send none */
	assert_accepted(fx, NULL, "alice");
}

static void
test_origin_allowed(Fixture *fx, gconstpointer user_data)
{
	assert_accepted(fx, "http://example.test", "alice");
	assert_accepted(fx, "http://other.test", "bob");
	assert_accepted(fx, NULL, "carol");
	assert_refused(fx, "http://evil.test");
	assert_refused(fx, "http://example.test.evil.test");
	assert_refused(fx, "https://example.test");
}

static void
test_subprotocol(Fixture *fx, gconstpointer user_data)
{
	const gchar *offer_ours[] = {CODECHAT_SUBPROTOCOL, NULL};
	const gchar *offer_two[] = {"chat.example.v9", CODECHAT_SUBPROTOCOL, NULL};
	g_autoptr(CodechatTestWs) a = codechat_test_ws_connect(fx->daemon->uri, NULL, offer_ours);
	g_autoptr(CodechatTestWs) b = codechat_test_ws_connect(fx->daemon->uri, NULL, offer_two);
	g_autoptr(CodechatTestWs) c = codechat_test_ws_connect(fx->daemon->uri, NULL, NULL);
	g_autoptr(JsonObject) wa = NULL;
	g_autoptr(JsonObject) wb = NULL;
	g_autoptr(JsonObject) wc = NULL;

	g_assert_cmpstr(codechat_test_ws_get_protocol(a), ==, CODECHAT_SUBPROTOCOL);
	g_assert_cmpstr(codechat_test_ws_get_protocol(b), ==, CODECHAT_SUBPROTOCOL);
	g_assert_null(codechat_test_ws_get_protocol(c));
	wa = codechat_test_ws_hello(a, "alice");
	wb = codechat_test_ws_hello(b, "bob");
	wc = codechat_test_ws_hello(c, "carol");
}

/* ------------------------------------------------------------------ */
/* hello */

static void
test_hello_welcome(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_connect(fx);
	g_autoptr(JsonObject) welcome = NULL;
	JsonObject *limits;
	const gchar *epoch;

	codechat_test_ws_send_text(
	    ws,
	    "{\"type\":\"hello\",\"nick\":\"Alice_1-x\",\"client\":\"test/1\",\"ref\":\"h1\"}");
	welcome = codechat_test_ws_expect(ws, "welcome");
	g_assert_cmpstr(codechat_test_json_string(welcome, "nick"), ==, "Alice_1-x");
	g_assert_cmpstr(codechat_test_json_string(welcome, "server"), ==, "codechatd/0.1.0");
	assert_ref(welcome, "h1");
	epoch = codechat_test_json_string(welcome, "epoch");
	g_assert_nonnull(epoch);
	g_assert_cmpuint(strlen(epoch), >, 0);
	g_assert_true(json_object_has_member(welcome, "limits"));
	limits = json_object_get_object_member(welcome, "limits");
	g_assert_nonnull(limits);
	g_assert_cmpint(codechat_test_json_int(limits, "max_text"), ==, CODECHAT_MAX_TEXT);
	g_assert_cmpint(codechat_test_json_int(limits, "rate"), ==, CODECHAT_DEFAULT_RATE);
	g_assert_cmpint(codechat_test_json_int(limits, "burst"), ==, CODECHAT_DEFAULT_BURST);

	/* a second session sees the same epoch */
	{
		g_autoptr(JsonObject) welcome2 = NULL;
		CodechatTestWs *ws2 =
		    codechat_test_ws_new_client(fx->daemon->uri, "bob", &welcome2);
		g_ptr_array_add(fx->clients, ws2);
		g_assert_cmpstr(codechat_test_json_string(welcome2, "epoch"), ==, epoch);
		assert_ref(welcome2, NULL);
	}
}

static void
test_hello_bad_json(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_connect(fx);
	g_autoptr(JsonObject) welcome = NULL;

	codechat_test_ws_send_text(ws, "{\"type\":\"hello\",\"nick\":");
	expect_error(ws, "bad-json", NULL);
	codechat_test_ws_send_text(ws, "this is not JSON");
	expect_error(ws, "bad-json", NULL);
	/* the session stays open and a hello still works */
	g_assert_true(codechat_test_ws_is_open(ws));
	welcome = codechat_test_ws_hello(ws, "alice");
	barrier(ws);
}

static void
test_hello_not_authenticated(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *a = fx_connect(fx);
	CodechatTestWs *b = fx_connect(fx);

	codechat_test_ws_send_text(a, "{\"type\":\"join\",\"room\":\"general\",\"ref\":\"j1\"}");
	expect_error(a, "not-authenticated", "j1");
	g_assert_cmpint(codechat_test_ws_wait_close(a, T),
			==,
			SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION);

	codechat_test_ws_send_text(b, "{\"type\":\"ping\"}");
	expect_error(b, "not-authenticated", NULL);
	g_assert_cmpint(codechat_test_ws_wait_close(b, T),
			==,
			SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION);
	/* nothing else came */
	g_assert_cmpuint(codechat_test_ws_pending(a), ==, 0);
	g_assert_cmpuint(codechat_test_ws_pending(b), ==, 0);
}

static void
test_hello_bad_nick(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *nick32 = NULL;
	g_autofree gchar *nick33 = NULL;
	CodechatTestWs *ws = fx_connect(fx);
	CodechatTestWs *ws2 = fx_connect(fx);
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) welcome2 = NULL;
	const gchar *bad[] = {
	    "",
	    "9lives",
	    "-dash",
	    "_under",
	    "has space",
	    "dot.ted",
	    "caf\\u00e9",
	    "tab\\tx",
	    NULL,
	    NULL,
	};
	guint i;

	nick33 = g_strnfill(33, 'a');
	nick32 = g_strnfill(32, 'a');
	bad[G_N_ELEMENTS(bad) - 2] = nick33;
	for (i = 0; bad[i] != NULL; i++) {
		codechat_test_note("bad nick \"%s\"", bad[i]);
		codechat_test_ws_sendf(ws,
				       "{\"type\":\"hello\",\"nick\":\"%s\",\"ref\":\"b%u\"}",
				       bad[i],
				       i);
		{
			g_autofree gchar *ref = g_strdup_printf("b%u", i);
			expect_error(ws, "bad-nick", ref);
		}
	}
	/* still open, and a nick at the limit is fine */
	welcome = codechat_test_ws_hello(ws, nick32);
	welcome2 = codechat_test_ws_hello(ws2, "A");
	barrier(ws);
	barrier(ws2);
}

static void
test_hello_nick_taken(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *ws = fx_connect(fx);
	g_autoptr(JsonObject) welcome = NULL;

	codechat_test_ws_send_text(ws, "{\"type\":\"hello\",\"nick\":\"alice\",\"ref\":\"t1\"}");
	expect_error(ws, "nick-taken", "t1");
	codechat_test_ws_send_text(ws, "{\"type\":\"hello\",\"nick\":\"ALICE\",\"ref\":\"t2\"}");
	expect_error(ws, "nick-taken", "t2");
	codechat_test_ws_send_text(ws, "{\"type\":\"hello\",\"nick\":\"aLiCe\"}");
	expect_error(ws, "nick-taken", NULL);
	/* the session stays open */
	welcome = codechat_test_ws_hello(ws, "alice2");
	barrier(ws);
	barrier(alice);
}

static void
test_hello_twice(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_client(fx, "alice");
	g_autoptr(JsonObject) joined = NULL;

	codechat_test_ws_send_text(ws, "{\"type\":\"hello\",\"nick\":\"bob\",\"ref\":\"h2\"}");
	expect_error(ws, "bad-request", "h2");
	codechat_test_ws_send_text(ws, "{\"type\":\"hello\",\"nick\":\"alice\",\"ref\":\"h3\"}");
	expect_error(ws, "bad-request", "h3");
	/* still alice, still open */
	joined = join_full(ws, "general", -1, "j");
	assert_nicks(joined, "members", "alice", NULL);
	barrier(ws);
}

static void
test_hello_timeout(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *good = fx_client(fx, "alice");
	CodechatTestWs *idle = fx_connect(fx);
	CodechatTestRaw *raw = fx_raw(fx);
	gint64 start = g_get_monotonic_time();

	/* --hello-timeout 1 */
	g_assert_cmpint(codechat_test_ws_wait_close(idle, 5000),
			==,
			SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION);
	g_assert_cmpint(g_get_monotonic_time() - start, >=, 500 * 1000);
	g_assert_cmpint(codechat_test_raw_wait_close(raw, 5000),
			==,
			SOUP_WEBSOCKET_CLOSE_POLICY_VIOLATION);
	/* the session that said hello in time is not affected */
	g_assert_true(codechat_test_ws_is_open(good));
	barrier(good);
}

/* ------------------------------------------------------------------ */
/* the envelope */

static void
test_ping(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_client(fx, "alice");
	g_autoptr(JsonObject) pong = NULL;
	g_autoptr(JsonObject) pong2 = NULL;

	codechat_test_ws_send_text(ws, "{\"type\":\"ping\"}");
	pong = codechat_test_ws_expect(ws, "pong");
	g_assert_cmpuint(json_object_get_size(pong), ==, 1);
	codechat_test_ws_send_text(ws, "{\"type\":\"ping\",\"ref\":\"p\"}");
	pong2 = codechat_test_ws_expect(ws, "pong");
	g_assert_cmpuint(json_object_get_size(pong2), ==, 2);
	assert_ref(pong2, "p");
}

static void
test_ref_echo(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = NULL;
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) joined = NULL;
	g_autoptr(JsonObject) msg = NULL;
	g_autoptr(JsonObject) copy = NULL;
	g_autoptr(JsonObject) direct = NULL;
	g_autoptr(JsonObject) direct_copy = NULL;
	g_autoptr(JsonObject) members = NULL;
	g_autoptr(JsonObject) rooms = NULL;
	g_autoptr(JsonObject) hist = NULL;
	g_autoptr(JsonObject) pong = NULL;
	g_autoptr(JsonObject) parted = NULL;

	join(bob, "general");
	alice = fx_connect(fx);
	codechat_test_ws_send_text(alice,
				   "{\"type\":\"hello\",\"nick\":\"alice\",\"ref\":\"r-hello\"}");
	welcome = codechat_test_ws_expect(alice, "welcome");
	assert_ref(welcome, "r-hello");

	joined = join_full(alice, "general", -1, "r-join");
	expect_presence(bob, "general", "alice", "join");

	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"room\":\"general\",\"text\":\"hi\",\"ref\":\"r-say\"}");
	msg = codechat_test_ws_expect(alice, "message");
	assert_message(msg, "general", NULL, "alice", "hi", "r-say");
	copy = codechat_test_ws_expect(bob, "message");
	assert_message(copy, "general", NULL, "alice", "hi", NULL);
	g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, codechat_test_json_int(copy, "id"));

	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"to\":\"bob\",\"text\":\"psst\",\"ref\":\"r-dm\"}");
	direct = codechat_test_ws_expect(alice, "message");
	assert_message(direct, NULL, "bob", "alice", "psst", "r-dm");
	direct_copy = codechat_test_ws_expect(bob, "message");
	assert_message(direct_copy, NULL, "bob", "alice", "psst", NULL);

	codechat_test_ws_send_text(alice,
				   "{\"type\":\"who\",\"room\":\"general\",\"ref\":\"r-who\"}");
	members = codechat_test_ws_expect(alice, "members");
	assert_ref(members, "r-who");

	codechat_test_ws_send_text(alice, "{\"type\":\"rooms\",\"ref\":\"r-rooms\"}");
	rooms = codechat_test_ws_expect(alice, "rooms");
	assert_ref(rooms, "r-rooms");

	hist = history(alice, "\"room\":\"general\"", "r-history");

	codechat_test_ws_send_text(alice, "{\"type\":\"ping\",\"ref\":\"r-ping\"}");
	pong = codechat_test_ws_expect(alice, "pong");
	assert_ref(pong, "r-ping");

	codechat_test_ws_send_text(alice,
				   "{\"type\":\"part\",\"room\":\"nowhere\",\"ref\":\"r-err\"}");
	expect_error(alice, "not-joined", "r-err");

	codechat_test_ws_send_text(alice,
				   "{\"type\":\"part\",\"room\":\"general\",\"ref\":\"r-part\"}");
	parted = codechat_test_ws_expect(alice, "parted");
	assert_ref(parted, "r-part");
	expect_presence(bob, "general", "alice", "part");

	barrier(alice);
	barrier(bob);
}

static void
test_ref_limit(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_client(fx, "alice");
	g_autofree gchar *ref64 = g_strnfill(64, 'r');
	g_autofree gchar *ref65 = g_strnfill(65, 'r');
	g_autofree gchar *ref64u = repeat("\xc3\xa9", 32);     /* 32 chars, 64 bytes */
	g_autofree gchar *ref66u = repeat("\xc3\xa9", 33);     /* 33 chars, 66 bytes */
	g_autofree gchar *ref63u = repeat("\xe2\x82\xac", 21); /* 21 chars, 63 bytes */
	g_autofree gchar *ref64m = g_strdup_printf("%sx", ref63u);
	g_autofree gchar *ref65m = g_strdup_printf("%sxy", ref63u);
	const gchar *good[] = {ref64, ref64u, ref64m};
	const gchar *bad[] = {ref65, ref66u, ref65m};

	for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autoptr(JsonObject) pong = NULL;
		codechat_test_ws_sendf(ws, "{\"type\":\"ping\",\"ref\":\"%s\"}", good[i]);
		pong = codechat_test_ws_expect(ws, "pong");
		assert_ref(pong, good[i]);
	}
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		codechat_test_ws_sendf(ws, "{\"type\":\"ping\",\"ref\":\"%s\"}", bad[i]);
		expect_error(ws, "bad-request", NULL);
	}

	/* a say with a bad ref is refused, not posted */
	join(ws, "general");
	codechat_test_ws_sendf(
	    ws,
	    "{\"type\":\"say\",\"room\":\"general\",\"text\":\"x\",\"ref\":\"%s\"}",
	    ref65);
	expect_error(ws, "bad-request", NULL);
	expect_history_page(ws, "general", "", 1, 0, FALSE);
}

static void
test_unknown_type(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_client(fx, "alice");
	g_autoptr(JsonObject) pong = NULL;

	codechat_test_ws_send_text(ws, "{\"type\":\"frobnicate\",\"ref\":\"u1\"}");
	expect_error(ws, "bad-request", "u1");
	codechat_test_ws_send_text(ws, "{\"type\":\"PING\",\"ref\":\"u2\"}");
	expect_error(ws, "bad-request", "u2");
	codechat_test_ws_send_text(ws, "{\"type\":\"welcome\",\"ref\":\"u3\"}");
	expect_error(ws, "bad-request", "u3");
	/* unknown fields are ignored */
	codechat_test_ws_send_text(
	    ws,
	    "{\"type\":\"ping\",\"ref\":\"u4\",\"extra\":{\"a\":[1,2,{\"b\":null}]},\"x\":1.5}");
	pong = codechat_test_ws_expect(ws, "pong");
	assert_ref(pong, "u4");
}

typedef struct {
	const gchar *frame; /* %s is the ref */
	const gchar *code;  /* NULL: any error code */
	gboolean has_ref;
} Garbage;

static void
test_garbage(Fixture *fx, gconstpointer user_data)
{
	static const Garbage garbage[] = {
	    {"{", "bad-json", FALSE},
	    {"not json at all", "bad-json", FALSE},
	    {"{\"type\":\"ping\"", "bad-json", FALSE},
	    {"{\"type\":\"ping\",}", "bad-json", FALSE},
	    {"{\"type\":\"ping\"}}", "bad-json", FALSE},
	    {"", NULL, FALSE},
	    {"   ", NULL, FALSE},
	    {"[1,2,3]", NULL, FALSE},
	    {"42", NULL, FALSE},
	    {"\"a string\"", NULL, FALSE},
	    {"null", NULL, FALSE},
	    {"{}", NULL, FALSE},
	    {"{\"type\":null}", NULL, FALSE},
	    {"{\"type\":42,\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":[\"ping\"],\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"frobnicate\",\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"\",\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"say\",\"room\":5,\"text\":\"x\",\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"say\",\"room\":\"g\",\"text\":123,\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"say\",\"room\":\"g\",\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"say\",\"text\":\"no target\",\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"say\",\"room\":\"g\",\"text\":\"x\",\"kind\":\"shout\",\"ref\":\"%s\"}",
	     "bad-request",
	     TRUE},
	    {"{\"type\":\"join\",\"room\":[\"g\"],\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"join\",\"room\":\"g\",\"since\":\"x\",\"ref\":\"%s\"}",
	     "bad-request",
	     TRUE},
	    {"{\"type\":\"join\",\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"history\",\"room\":\"g\",\"limit\":\"ten\",\"ref\":\"%s\"}",
	     "bad-request",
	     TRUE},
	    {"{\"type\":\"history\",\"room\":\"g\",\"before\":-1,\"ref\":\"%s\"}",
	     "bad-request",
	     TRUE},
	    {"{\"type\":\"history\",\"room\":\"g\",\"after\":1.5,\"ref\":\"%s\"}",
	     "bad-request",
	     TRUE},
	    {"{\"type\":\"hello\",\"nick\":\"alice\",\"ref\":\"%s\"}", "bad-request", TRUE},
	    {"{\"type\":\"ping\",\"ref\":5}", "bad-request", FALSE},
	    {"{\"type\":\"who\",\"room\":{},\"ref\":\"%s\"}", "bad-request", TRUE},
	};
	CodechatTestWs *ws = fx_client(fx, "alice");
	const guint n = 1000;
	g_autoptr(JsonObject) msg = NULL;

	join(ws, "g");
	for (guint i = 0; i < n; i++) {
		const Garbage *g = &garbage[i % G_N_ELEMENTS(garbage)];
		g_autofree gchar *ref = g_strdup_printf("g%u", i);
		g_autofree gchar *frame = NULL;
		if (g->has_ref) {
			g_autoptr(GString) str = g_string_new(g->frame);
			g_string_replace(str, "%s", ref, 1);
			frame = g_string_free(g_steal_pointer(&str), FALSE);
		} else {
			frame = g_strdup(g->frame);
		}
		codechat_test_ws_send_text(ws, frame);
	}
	for (guint i = 0; i < n; i++) {
		const Garbage *g = &garbage[i % G_N_ELEMENTS(garbage)];
		g_autofree gchar *ref = g_strdup_printf("g%u", i);
		g_autoptr(JsonObject) err = codechat_test_ws_expect(ws, "error");
		if (g->code != NULL) {
			if (g_strcmp0(codechat_test_json_string(err, "code"), g->code) != 0)
				codechat_test_note("frame %u (%s) got %s",
						   i,
						   g->frame,
						   codechat_test_json_string(err, "code"));
			g_assert_cmpstr(codechat_test_json_string(err, "code"), ==, g->code);
		}
		g_assert_nonnull(codechat_test_json_string(err, "code"));
		assert_ref(err, g->has_ref ? ref : NULL);
	}
	/* the session survived all of it */
	g_assert_true(codechat_test_ws_is_open(ws));
	msg = say_full(ws, "g", "still here", "ok");
	g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, 1);
	barrier(ws);
}

static void
test_deep_nesting(Fixture *fx, gconstpointer user_data)
{
	/* 120000 nested arrays: 240000 bytes, under the frame limit;
	 * json-glib recurses once per level */
	CodechatTestWs *ws = fx_client(fx, "alice");
	const guint depth = 120000;
	g_autoptr(GString) str = g_string_sized_new(depth * 2 + 1);
	g_autoptr(JsonObject) err = NULL;

	for (guint i = 0; i < depth; i++)
		g_string_append_c(str, '[');
	for (guint i = 0; i < depth; i++)
		g_string_append_c(str, ']');
	codechat_test_ws_send_text(ws, str->str);
	err = codechat_test_ws_recv(ws, T);
	if (err == NULL)
		report_daemon_state(fx);
	g_assert_nonnull(err);
	g_assert_cmpstr(codechat_test_json_string(err, "type"), ==, "error");
	g_assert_true(codechat_test_ws_is_open(ws));
	barrier(ws);
}

/* ------------------------------------------------------------------ */
/* rooms */

static void
test_join(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(JsonObject) welcome = NULL;
	CodechatTestWs *alice = codechat_test_ws_new_client(fx->daemon->uri, "alice", &welcome);
	CodechatTestWs *bob = NULL;
	CodechatTestWs *carol = NULL;
	g_autoptr(JsonObject) j1 = NULL;
	g_autoptr(JsonObject) j2 = NULL;
	g_autoptr(JsonObject) j3 = NULL;
	const gchar *epoch = codechat_test_json_string(welcome, "epoch");

	g_ptr_array_add(fx->clients, alice);
	bob = fx_client(fx, "bob");
	carol = fx_client(fx, "carol");

	j1 = join_full(alice, "general", -1, "j1");
	assert_nicks(j1, "members", "alice", NULL);
	g_assert_cmpint(codechat_test_json_int(j1, "last_id"), ==, 0);
	g_assert_cmpstr(codechat_test_json_string(j1, "epoch"), ==, epoch);
	g_assert_cmpstr(codechat_test_json_string(j1, "topic"), ==, "");
	g_assert_false(json_object_has_member(j1, "truncated"));

	j2 = join_full(bob, "general", -1, "j2");
	assert_nicks(j2, "members", "alice", "bob", NULL);
	g_assert_cmpint(codechat_test_json_int(j2, "last_id"), ==, 0);
	expect_presence(alice, "general", "bob", "join");

	g_assert_cmpint(say(alice, "general", "one"), ==, 1);
	g_assert_cmpint(say(alice, "general", "two"), ==, 2);
	g_assert_cmpint(say(alice, "general", "three"), ==, 3);
	for (guint i = 0; i < 3; i++) {
		g_autoptr(JsonObject) copy = codechat_test_ws_expect(bob, "message");
		g_assert_cmpint(codechat_test_json_int(copy, "id"), ==, i + 1);
	}

	j3 = join_full(carol, "general", -1, "j3");
	assert_nicks(j3, "members", "alice", "bob", "carol", NULL);
	g_assert_cmpint(codechat_test_json_int(j3, "last_id"), ==, 3);
	g_assert_cmpstr(codechat_test_json_string(j3, "epoch"), ==, epoch);
	g_assert_cmpstr(codechat_test_json_string(j3, "topic"), ==, "");
	g_assert_false(json_object_has_member(j3, "truncated"));
	expect_presence(alice, "general", "carol", "join");
	expect_presence(bob, "general", "carol", "join");

	/* a plain join replays nothing, and nobody hears about themselves */
	barrier(alice);
	barrier(bob);
	barrier(carol);
}

static void
test_join_twice(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autoptr(JsonObject) j1 = NULL;
	g_autoptr(JsonObject) j2 = NULL;

	join(bob, "general");
	j1 = join_full(alice, "general", -1, "a");
	expect_presence(bob, "general", "alice", "join");
	say(bob, "general", "hello");
	{
		g_autoptr(JsonObject) copy = codechat_test_ws_expect(alice, "message");
		(void)copy;
	}
	j2 = join_full(alice, "general", -1, "b");
	assert_nicks(j2, "members", "alice", "bob", NULL);
	g_assert_cmpint(codechat_test_json_int(j2, "last_id"), ==, 1);
	barrier(alice);
	/* alice is in the room once: one copy of the next message */
	say(bob, "general", "again");
	{
		g_autoptr(JsonObject) copy = codechat_test_ws_expect(alice, "message");
		g_assert_cmpint(codechat_test_json_int(copy, "id"), ==, 2);
	}
	barrier(alice);
}

static void
test_bad_room(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_client(fx, "alice");
	g_autofree gchar *room64 = g_strnfill(64, 'r');
	g_autofree gchar *room65 = g_strnfill(65, 'r');
	const gchar *bad[] =
	    {"General", "", ".dot", "-dash", "_under", "has space", "a/b", "caf\\u00e9", room65};
	const gchar *good[] = {room64, "0start", "a.b_c-d", "x"};
	const gchar *requests[] = {
	    "{\"type\":\"part\",\"room\":\"Bad\",\"ref\":\"q\"}",
	    "{\"type\":\"who\",\"room\":\"Bad\",\"ref\":\"q\"}",
	    "{\"type\":\"history\",\"room\":\"Bad\",\"ref\":\"q\"}",
	    "{\"type\":\"say\",\"room\":\"Bad\",\"text\":\"x\",\"ref\":\"q\"}",
	};

	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		codechat_test_note("bad room \"%s\"", bad[i]);
		codechat_test_ws_sendf(ws,
				       "{\"type\":\"join\",\"room\":\"%s\",\"ref\":\"b\"}",
				       bad[i]);
		expect_error(ws, "bad-room", "b");
	}
	for (guint i = 0; i < G_N_ELEMENTS(requests); i++) {
		codechat_test_ws_send_text(ws, requests[i]);
		expect_error(ws, "bad-room", "q");
	}
	for (guint i = 0; i < G_N_ELEMENTS(good); i++)
		join(ws, good[i]);
	/* the 64-character room works end to end */
	g_assert_cmpint(say(ws, room64, "long name"), ==, 1);
	barrier(ws);
}

static void
test_part(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autoptr(JsonObject) parted = NULL;
	g_autoptr(JsonObject) parted2 = NULL;

	join(alice, "r");
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");

	codechat_test_ws_send_text(bob, "{\"type\":\"part\",\"room\":\"r\"}");
	parted = codechat_test_ws_expect(bob, "parted");
	g_assert_cmpstr(codechat_test_json_string(parted, "room"), ==, "r");
	g_assert_cmpuint(json_object_get_size(parted), ==, 2);
	expect_presence(alice, "r", "bob", "part");

	codechat_test_ws_send_text(bob, "{\"type\":\"part\",\"room\":\"r\",\"ref\":\"p2\"}");
	expect_error(bob, "not-joined", "p2");
	codechat_test_ws_send_text(bob, "{\"type\":\"part\",\"room\":\"never\",\"ref\":\"p3\"}");
	expect_error(bob, "not-joined", "p3");
	codechat_test_ws_send_text(
	    bob,
	    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"x\",\"ref\":\"p4\"}");
	expect_error(bob, "not-joined", "p4");

	/* bob no longer gets the room's messages */
	say(alice, "r", "bob is gone");
	barrier(bob);

	/* with a ref the reply is {type, room, ref} */
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");
	codechat_test_ws_send_text(bob, "{\"type\":\"part\",\"room\":\"r\",\"ref\":\"p5\"}");
	parted2 = codechat_test_ws_expect(bob, "parted");
	g_assert_cmpstr(codechat_test_json_string(parted2, "room"), ==, "r");
	assert_ref(parted2, "p5");
	g_assert_cmpuint(json_object_get_size(parted2), ==, 3);
	expect_presence(alice, "r", "bob", "part");
	barrier(alice);
	barrier(bob);
}

static void
test_presence(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *carol = fx_client(fx, "carol");
	CodechatTestWs *dave = fx_client(fx, "dave");

	join(alice, "r");
	join(dave, "other");
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");
	barrier(bob); /* no presence about himself */

	codechat_test_ws_send_text(bob, "{\"type\":\"part\",\"room\":\"r\"}");
	{
		g_autoptr(JsonObject) parted = codechat_test_ws_expect(bob, "parted");
		(void)parted;
	}
	expect_presence(alice, "r", "bob", "part");
	barrier(bob);

	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");
	join(bob, "other");
	expect_presence(dave, "other", "bob", "join");

	/* a connection that goes away is a quit, in every room */
	fx_drop(fx, bob);
	expect_presence(alice, "r", "bob", "quit");
	expect_presence(dave, "other", "bob", "quit");

	/* nothing about oneself, nothing for rooms one is not in */
	barrier(alice);
	barrier(carol);
	barrier(dave);
}

static void
test_who(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *carol = fx_client(fx, "carol");
	g_autoptr(JsonObject) m1 = NULL;
	g_autoptr(JsonObject) m2 = NULL;
	g_autoptr(JsonObject) m3 = NULL;

	join(alice, "r");
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");

	/* works without joining */
	codechat_test_ws_send_text(carol, "{\"type\":\"who\",\"room\":\"r\",\"ref\":\"w\"}");
	m1 = codechat_test_ws_expect(carol, "members");
	g_assert_cmpstr(codechat_test_json_string(m1, "room"), ==, "r");
	assert_nicks(m1, "members", "alice", "bob", NULL);
	assert_ref(m1, "w");

	codechat_test_ws_send_text(carol, "{\"type\":\"who\",\"room\":\"empty\"}");
	m2 = codechat_test_ws_expect(carol, "members");
	g_assert_cmpstr(codechat_test_json_string(m2, "room"), ==, "empty");
	assert_nicks(m2, "members", NULL);

	codechat_test_ws_send_text(bob, "{\"type\":\"part\",\"room\":\"r\"}");
	{
		g_autoptr(JsonObject) parted = codechat_test_ws_expect(bob, "parted");
		(void)parted;
	}
	expect_presence(alice, "r", "bob", "part");
	codechat_test_ws_send_text(alice, "{\"type\":\"who\",\"room\":\"r\"}");
	m3 = codechat_test_ws_expect(alice, "members");
	assert_nicks(m3, "members", "alice", NULL);
}

static void
assert_room_entry(JsonArray *rooms, guint i, const gchar *name, gint64 members, gint64 last_id)
{
	JsonObject *room = json_array_get_object_element(rooms, i);

	g_assert_nonnull(room);
	g_assert_cmpstr(codechat_test_json_string(room, "name"), ==, name);
	g_assert_cmpint(codechat_test_json_int(room, "members"), ==, members);
	g_assert_cmpint(codechat_test_json_int(room, "last_id"), ==, last_id);
	g_assert_cmpstr(codechat_test_json_string(room, "topic"), ==, "");
}

static void
test_rooms(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *carol = fx_client(fx, "carol");
	CodechatTestWs *dave = fx_client(fx, "dave");
	g_autoptr(JsonObject) empty = NULL;
	g_autoptr(JsonObject) reply = NULL;
	JsonArray *rooms;

	codechat_test_ws_send_text(alice, "{\"type\":\"rooms\"}");
	empty = codechat_test_ws_expect(alice, "rooms");
	g_assert_cmpuint(json_array_get_length(get_array(empty, "rooms")), ==, 0);

	/* zeta: a member, no messages; alpha: messages, no member;
	 * gamma: neither (not listed); beta: both */
	join(alice, "zeta");
	join(bob, "alpha");
	say(bob, "alpha", "a1");
	say(bob, "alpha", "a2");
	codechat_test_ws_send_text(bob, "{\"type\":\"part\",\"room\":\"alpha\"}");
	{
		g_autoptr(JsonObject) parted = codechat_test_ws_expect(bob, "parted");
		(void)parted;
	}
	join(carol, "gamma");
	codechat_test_ws_send_text(carol, "{\"type\":\"part\",\"room\":\"gamma\"}");
	{
		g_autoptr(JsonObject) parted = codechat_test_ws_expect(carol, "parted");
		(void)parted;
	}
	join(dave, "beta");
	say(dave, "beta", "b1");

	codechat_test_ws_send_text(carol, "{\"type\":\"rooms\",\"ref\":\"r\"}");
	reply = codechat_test_ws_expect(carol, "rooms");
	assert_ref(reply, "r");
	rooms = get_array(reply, "rooms");
	g_assert_cmpuint(json_array_get_length(rooms), ==, 3);
	assert_room_entry(rooms, 0, "alpha", 0, 2);
	assert_room_entry(rooms, 1, "beta", 1, 1);
	assert_room_entry(rooms, 2, "zeta", 1, 0);
}

/* ------------------------------------------------------------------ */
/* messages */

static void
test_message_two(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autoptr(JsonObject) mine = NULL;
	g_autoptr(JsonObject) theirs = NULL;
	g_autoptr(JsonObject) mine2 = NULL;
	g_autoptr(JsonObject) theirs2 = NULL;

	join(alice, "general");
	join(bob, "general");
	expect_presence(alice, "general", "bob", "join");

	mine = say_full(alice, "general", "hello bob", "m1");
	theirs = codechat_test_ws_expect(bob, "message");
	assert_message(theirs, "general", NULL, "alice", "hello bob", NULL);
	g_assert_cmpint(codechat_test_json_int(mine, "id"), ==, 1);
	g_assert_cmpint(codechat_test_json_int(theirs, "id"), ==, 1);
	g_assert_cmpstr(codechat_test_json_string(mine, "ts"),
			==,
			codechat_test_json_string(theirs, "ts"));
	g_assert_cmpstr(codechat_test_json_string(mine, "kind"), ==, "text");
	g_assert_cmpstr(codechat_test_json_string(theirs, "kind"), ==, "text");
	g_assert_false(json_object_has_member(theirs, "lang"));
	g_assert_false(json_object_has_member(theirs, "filename"));

	mine2 = say_full(bob, "general", "hi alice", "m2");
	theirs2 = codechat_test_ws_expect(alice, "message");
	assert_message(theirs2, "general", NULL, "bob", "hi alice", NULL);
	g_assert_cmpint(codechat_test_json_int(mine2, "id"), ==, 2);
	g_assert_cmpint(codechat_test_json_int(theirs2, "id"), ==, 2);
	barrier(alice);
	barrier(bob);
}

static void
test_message_three(Fixture *fx, gconstpointer user_data)
{
	const gchar *nicks[] = {"alice", "bob", "carol"};
	CodechatTestWs *ws[3];
	gint64 ids[3][3];
	gchar *from[3][3];

	for (guint i = 0; i < 3; i++) {
		ws[i] = fx_client(fx, nicks[i]);
		join(ws[i], "general");
		for (guint j = 0; j < i; j++)
			expect_presence(ws[j], "general", nicks[i], "join");
	}
	/* all three talk at once */
	for (guint i = 0; i < 3; i++)
		codechat_test_ws_sendf(
		    ws[i],
		    "{\"type\":\"say\",\"room\":\"general\",\"text\":\"from %s\","
		    "\"ref\":\"r-%s\"}",
		    nicks[i],
		    nicks[i]);
	for (guint i = 0; i < 3; i++) {
		for (guint k = 0; k < 3; k++) {
			g_autoptr(JsonObject) msg = codechat_test_ws_expect(ws[i], "message");
			const gchar *sender = codechat_test_json_string(msg, "from");
			g_autofree gchar *text = g_strdup_printf("from %s", sender);
			g_autofree gchar *ref = g_strdup_printf("r-%s", sender);
			ids[i][k] = assert_message(msg,
						   "general",
						   NULL,
						   sender,
						   text,
						   g_strcmp0(sender, nicks[i]) == 0 ? ref : NULL);
			from[i][k] = g_strdup(sender);
		}
	}
	/* everyone saw the same messages with the same ids in the same order */
	for (guint k = 0; k < 3; k++) {
		g_assert_cmpint(ids[0][k], ==, k + 1);
		for (guint i = 1; i < 3; i++) {
			g_assert_cmpint(ids[i][k], ==, ids[0][k]);
			g_assert_cmpstr(from[i][k], ==, from[0][k]);
		}
	}
	for (guint i = 0; i < 3; i++) {
		for (guint k = 0; k < 3; k++)
			g_free(from[i][k]);
		barrier(ws[i]);
	}
}

static void
test_message_ids(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_client(fx, "alice");

	join(ws, "a");
	join(ws, "b");
	g_assert_cmpint(say(ws, "a", "a1"), ==, 1);
	g_assert_cmpint(say(ws, "a", "a2"), ==, 2);
	g_assert_cmpint(say(ws, "b", "b1"), ==, 1);
	g_assert_cmpint(say(ws, "a", "a3"), ==, 3);
	g_assert_cmpint(say(ws, "b", "b2"), ==, 2);
	g_assert_cmpint(say(ws, "b", "b3"), ==, 3);
	g_assert_cmpint(say(ws, "a", "a4"), ==, 4);
	/* a rejected say takes no id */
	codechat_test_ws_send_text(ws,
				   "{\"type\":\"say\",\"room\":\"a\",\"text\":\"\",\"ref\":\"e\"}");
	expect_error(ws, "bad-request", "e");
	g_assert_cmpint(say(ws, "a", "a5"), ==, 5);
}

static void
test_message_kinds(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	const gchar *kinds[] = {"text", "code", "action"};

	join(alice, "r");
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");

	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"room\":\"r\",\"kind\":\"code\",\"lang\":\"c\","
	    "\"filename\":\"main.c\",\"text\":\"int main(void);\",\"ref\":\"k1\"}");
	codechat_test_ws_send_text(alice,
				   "{\"type\":\"say\",\"room\":\"r\",\"kind\":\"action\","
				   "\"text\":\"waves\",\"ref\":\"k2\"}");
	codechat_test_ws_send_text(alice,
				   "{\"type\":\"say\",\"room\":\"r\",\"kind\":\"text\","
				   "\"text\":\"plain\",\"ref\":\"k3\"}");
	codechat_test_ws_send_text(alice,
				   "{\"type\":\"say\",\"room\":\"r\",\"kind\":\"shout\","
				   "\"text\":\"LOUD\",\"ref\":\"k4\"}");
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"room\":\"r\",\"kind\":\"code\",\"lang\":\"diff\","
	    "\"text\":\"--- a\\n+++ b\\n\",\"ref\":\"k5\"}");
	for (guint w = 0; w < 2; w++) {
		CodechatTestWs *ws = w == 0 ? alice : bob;
		g_autoptr(JsonObject) code = codechat_test_ws_expect(ws, "message");
		g_autoptr(JsonObject) action = codechat_test_ws_expect(ws, "message");
		g_autoptr(JsonObject) plain = codechat_test_ws_expect(ws, "message");
		g_autoptr(JsonObject) diff = NULL;

		assert_message(code, "r", NULL, "alice", "int main(void);", w == 0 ? "k1" : NULL);
		g_assert_cmpstr(codechat_test_json_string(code, "kind"), ==, kinds[1]);
		g_assert_cmpstr(codechat_test_json_string(code, "lang"), ==, "c");
		g_assert_cmpstr(codechat_test_json_string(code, "filename"), ==, "main.c");
		assert_message(action, "r", NULL, "alice", "waves", w == 0 ? "k2" : NULL);
		g_assert_cmpstr(codechat_test_json_string(action, "kind"), ==, kinds[2]);
		assert_message(plain, "r", NULL, "alice", "plain", w == 0 ? "k3" : NULL);
		g_assert_cmpstr(codechat_test_json_string(plain, "kind"), ==, kinds[0]);
		if (w == 0)
			expect_error(alice, "bad-request", "k4");
		diff = codechat_test_ws_expect(ws, "message");
		assert_message(diff, "r", NULL, "alice", "--- a\n+++ b\n", w == 0 ? "k5" : NULL);
		g_assert_cmpstr(codechat_test_json_string(diff, "lang"), ==, "diff");
		g_assert_false(json_object_has_member(diff, "filename"));
		barrier(ws);
	}
}

static void
test_text_limits(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autofree gchar *max_ascii = g_strnfill(CODECHAT_MAX_TEXT, 'x');
	g_autofree gchar *over_ascii = g_strnfill(CODECHAT_MAX_TEXT + 1, 'x');
	g_autofree gchar *max_utf8 = repeat("\xc3\xa9", CODECHAT_MAX_TEXT / 2);
	g_autofree gchar *over_utf8 = g_strdup_printf("%sx", max_utf8);
	g_autofree gchar *max_escaped = repeat("\\u00e9", CODECHAT_MAX_TEXT / 2);
	const gchar *special = "line1\nline2\t\"quoted\" \\ back \xe2\x9c\x93 \xf0\x9f\x98\x80";
	const gchar *accepted[] = {max_ascii, max_utf8, special, " "};

	join(alice, "r");
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");

	/* at the limit, counted in bytes */
	for (guint i = 0; i < G_N_ELEMENTS(accepted); i++) {
		g_autoptr(JsonObject) copy = NULL;
		g_autofree gchar *ref = g_strdup_printf("ok%u", i);
		g_autoptr(JsonObject) mine = say_full(alice, "r", accepted[i], ref);
		copy = codechat_test_ws_expect(bob, "message");
		assert_message(copy, "r", NULL, "alice", accepted[i], NULL);
		g_assert_cmpint(codechat_test_json_int(copy, "id"),
				==,
				codechat_test_json_int(mine, "id"));
	}
	/* the limit applies to the decoded text, not to its escaped form */
	codechat_test_ws_sendf(alice,
			       "{\"type\":\"say\",\"room\":\"r\",\"text\":\"%s\",\"ref\":\"esc\"}",
			       max_escaped);
	{
		g_autoptr(JsonObject) mine = codechat_test_ws_expect(alice, "message");
		g_autoptr(JsonObject) copy = codechat_test_ws_expect(bob, "message");
		assert_message(mine, "r", NULL, "alice", max_utf8, "esc");
		assert_message(copy, "r", NULL, "alice", max_utf8, NULL);
	}

	/* one byte over */
	{
		g_autofree gchar *q = quote(over_ascii);
		codechat_test_ws_sendf(
		    alice,
		    "{\"type\":\"say\",\"room\":\"r\",\"text\":%s,\"ref\":\"long1\"}",
		    q);
		expect_error(alice, "too-long", "long1");
	}
	{
		g_autofree gchar *q = quote(over_utf8);
		codechat_test_ws_sendf(
		    alice,
		    "{\"type\":\"say\",\"room\":\"r\",\"text\":%s,\"ref\":\"long2\"}",
		    q);
		expect_error(alice, "too-long", "long2");
	}
	/* empty, NUL inside, missing */
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"\",\"ref\":\"e1\"}");
	expect_error(alice, "bad-request", "e1");
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"a\\u0000b\",\"ref\":\"e2\"}");
	expect_error(alice, "bad-request", "e2");
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"\\u0000\",\"ref\":\"e3\"}");
	expect_error(alice, "bad-request", "e3");
	codechat_test_ws_send_text(alice, "{\"type\":\"say\",\"room\":\"r\",\"ref\":\"e4\"}");
	expect_error(alice, "bad-request", "e4");

	/* bob got the accepted messages only, and their ids have no gaps */
	barrier(bob);
	expect_history_page(alice, "r", "\"after\":5", 1, 0, FALSE);
	{
		g_autoptr(JsonObject) hist = history(alice, "\"room\":\"r\"", "h");
		g_assert_cmpuint(json_array_get_length(get_array(hist, "messages")), ==, 5);
	}
}

static void
test_filename(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_client(fx, "alice");
	g_autofree gchar *f255 = g_strnfill(CODECHAT_MAX_FILENAME, 'f');
	g_autofree gchar *f256 = g_strnfill(CODECHAT_MAX_FILENAME + 1, 'f');
	g_autofree gchar *u254 = repeat("\xc3\xa9", 127);
	g_autofree gchar *u255 = g_strdup_printf("%sa", u254);
	g_autofree gchar *u256 = repeat("\xc3\xa9", 128);
	const gchar *good[] = {f255, u255, "main.c", ".hidden"};
	const gchar *bad[] = {f256, u256, "dir/file.c", "../etc/passwd", "/"};

	join(ws, "r");
	for (guint i = 0; i < G_N_ELEMENTS(good); i++) {
		g_autoptr(JsonObject) msg = NULL;
		codechat_test_ws_sendf(
		    ws,
		    "{\"type\":\"say\",\"room\":\"r\",\"kind\":\"code\",\"filename\":\"%s\","
		    "\"text\":\"x\",\"ref\":\"g\"}",
		    good[i]);
		msg = codechat_test_ws_expect(ws, "message");
		assert_ref(msg, "g");
		g_assert_cmpstr(codechat_test_json_string(msg, "filename"), ==, good[i]);
	}
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		codechat_test_note("bad filename \"%s\"", bad[i]);
		codechat_test_ws_sendf(
		    ws,
		    "{\"type\":\"say\",\"room\":\"r\",\"kind\":\"code\",\"filename\":\"%s\","
		    "\"text\":\"x\",\"ref\":\"b\"}",
		    bad[i]);
		expect_error(ws, "bad-request", "b");
	}
	barrier(ws);
}

static void
test_not_joined(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");

	join(bob, "busy");
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"room\":\"busy\",\"text\":\"x\",\"ref\":\"n1\"}");
	expect_error(alice, "not-joined", "n1");
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"room\":\"nowhere\",\"text\":\"x\",\"ref\":\"n2\"}");
	expect_error(alice, "not-joined", "n2");
	barrier(bob);
	expect_history_page(bob, "busy", "", 1, 0, FALSE);
}

/* ------------------------------------------------------------------ */
/* resuming */

static void
test_resume_since(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *carol = fx_client(fx, "carol");
	CodechatTestWs *dave = fx_client(fx, "dave");
	CodechatTestWs *erin = fx_client(fx, "erin");
	g_autoptr(JsonObject) jb = NULL;
	g_autoptr(JsonObject) jc = NULL;
	g_autoptr(JsonObject) jd = NULL;
	g_autoptr(JsonObject) je = NULL;

	join(alice, "r");
	fill_room(alice, "r", 10);

	jb = join_full(bob, "r", 4, "jb");
	g_assert_cmpint(codechat_test_json_int(jb, "last_id"), ==, 10);
	g_assert_false(json_object_has_member(jb, "truncated"));
	expect_replay(bob, "r", 5, 10);
	barrier(bob);
	expect_presence(alice, "r", "bob", "join");

	jc = join_full(carol, "r", 10, "jc");
	g_assert_false(json_object_has_member(jc, "truncated"));
	barrier(carol);

	jd = join_full(dave, "r", 0, "jd");
	expect_replay(dave, "r", 1, 10);
	barrier(dave);

	je = join_full(erin, "r", -1, "je");
	barrier(erin);

	expect_presence(alice, "r", "carol", "join");
	expect_presence(alice, "r", "dave", "join");
	expect_presence(alice, "r", "erin", "join");
	expect_presence(bob, "r", "carol", "join");
	expect_presence(bob, "r", "dave", "join");
	expect_presence(bob, "r", "erin", "join");

	/* then live traffic */
	g_assert_cmpint(say(alice, "r", "m11"), ==, 11);
	{
		g_autoptr(JsonObject) live = codechat_test_ws_expect(bob, "message");
		g_assert_cmpint(assert_message(live, "r", NULL, "alice", "m11", NULL), ==, 11);
	}
	barrier(bob);
}

static void
test_resume_race(Fixture *fx, gconstpointer user_data)
{
	/* the replay races live messages: still no gap and no duplicate */
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	const guint total = 205;
	g_autoptr(JsonObject) joined = NULL;
	guint presences = 0;
	gint64 expected = 6;

	join(alice, "r");
	fill_room(alice, "r", 5);
	for (guint i = 6; i <= total; i++)
		codechat_test_ws_sendf(
		    alice,
		    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"m%u\",\"ref\":\"f%u\"}",
		    i,
		    i);
	codechat_test_ws_send_text(bob,
				   "{\"type\":\"join\",\"room\":\"r\",\"since\":3,\"ref\":\"j\"}");

	while (expected <= total) {
		g_autoptr(JsonObject) obj = codechat_test_ws_recv(alice, T);
		g_assert_nonnull(obj);
		if (g_strcmp0(codechat_test_json_string(obj, "type"), "presence") == 0) {
			assert_presence(obj, "r", "bob", "join");
			presences++;
			continue;
		}
		g_assert_cmpstr(codechat_test_json_string(obj, "type"), ==, "message");
		g_assert_cmpint(codechat_test_json_int(obj, "id"), ==, expected);
		expected++;
	}
	if (presences == 0)
		expect_presence(alice, "r", "bob", "join");
	else
		g_assert_cmpuint(presences, ==, 1);

	joined = codechat_test_ws_expect(bob, "joined");
	assert_ref(joined, "j");
	expect_replay(bob, "r", 4, total);
	barrier(bob);
	barrier(alice);
}

static void
test_resume_truncated(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *carol = fx_client(fx, "carol");
	CodechatTestWs *dave = fx_client(fx, "dave");
	g_autoptr(JsonObject) jb = NULL;
	g_autoptr(JsonObject) jc = NULL;
	g_autoptr(JsonObject) jd = NULL;

	join(alice, "r");
	fill_room(alice, "r", 520);

	/* 501 missed: truncated, and the replay is the latest 500 */
	jb = join_full(bob, "r", 19, "jb");
	g_assert_cmpint(codechat_test_json_int(jb, "last_id"), ==, 520);
	g_assert_true(get_bool(jb, "truncated"));
	expect_replay(bob, "r", 21, 520);
	barrier(bob);
	/* the client pages back for the rest */
	expect_history_page(bob, "r", "\"before\":21", 1, 20, FALSE);

	/* exactly 500 missed: all of them, not truncated */
	jc = join_full(carol, "r", 20, "jc");
	g_assert_false(json_object_has_member(jc, "truncated"));
	expect_replay(carol, "r", 21, 520);
	barrier(carol);

	jd = join_full(dave, "r", 0, "jd");
	g_assert_true(get_bool(jd, "truncated"));
	expect_replay(dave, "r", 21, 520);
	barrier(dave);
}

/* ------------------------------------------------------------------ */
/* history */

static void
test_history_latest(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autoptr(JsonObject) empty = NULL;

	join(alice, "r");
	fill_room(alice, "r", 60);
	join(alice, "small");
	fill_room(alice, "small", 20);

	/* bob never joined: history works anyway */
	expect_history_page(bob, "r", "", 11, 60, TRUE);
	expect_history_page(bob, "r", "\"limit\":10", 51, 60, TRUE);
	expect_history_page(bob, "r", "\"limit\":60", 1, 60, FALSE);
	expect_history_page(bob, "r", "\"limit\":61", 1, 60, FALSE);
	expect_history_page(bob, "small", "", 1, 20, FALSE);

	empty = history(bob, "\"room\":\"nothing-here\"", "e");
	assert_page(empty, "nothing-here", 1, 0, FALSE);
	barrier(bob);
}

static void
test_history_limit(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");

	join(alice, "r");
	fill_room(alice, "r", 520);

	expect_history_page(alice, "r", "\"limit\":1000", 21, 520, TRUE);
	expect_history_page(alice, "r", "\"limit\":500", 21, 520, TRUE);
	expect_history_page(alice, "r", "\"limit\":501", 21, 520, TRUE);
	expect_history_page(alice, "r", "\"limit\":1", 520, 520, TRUE);
	expect_history_page(alice, "r", "\"after\":0,\"limit\":1000", 1, 500, TRUE);
	expect_history_page(alice, "r", "\"after\":20,\"limit\":1000", 21, 520, FALSE);
	expect_history_page(alice, "r", "\"after\":19,\"limit\":1000", 20, 519, TRUE);
	expect_history_page(alice, "r", "\"before\":521,\"limit\":1000", 21, 520, TRUE);
	expect_history_page(alice, "r", "\"before\":501,\"limit\":1000", 1, 500, FALSE);

	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"history\",\"room\":\"r\",\"limit\":0,\"ref\":\"z\"}");
	expect_error(alice, "bad-request", "z");
}

static void
test_history_before(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");

	join(alice, "r");
	fill_room(alice, "r", 20);
	expect_history_page(alice, "r", "\"before\":11,\"limit\":5", 6, 10, TRUE);
	expect_history_page(alice, "r", "\"before\":6,\"limit\":5", 1, 5, FALSE);
	expect_history_page(alice, "r", "\"before\":4,\"limit\":5", 1, 3, FALSE);
	expect_history_page(alice, "r", "\"before\":1", 1, 0, FALSE);
	expect_history_page(alice, "r", "\"before\":21,\"limit\":5", 16, 20, TRUE);
	expect_history_page(alice, "r", "\"before\":100,\"limit\":5", 16, 20, TRUE);
	expect_history_page(alice, "r", "\"before\":21", 1, 20, FALSE);
}

static void
test_history_after(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");

	join(alice, "r");
	fill_room(alice, "r", 20);
	expect_history_page(alice, "r", "\"after\":0,\"limit\":5", 1, 5, TRUE);
	expect_history_page(alice, "r", "\"after\":5,\"limit\":5", 6, 10, TRUE);
	expect_history_page(alice, "r", "\"after\":15,\"limit\":5", 16, 20, FALSE);
	expect_history_page(alice, "r", "\"after\":17,\"limit\":5", 18, 20, FALSE);
	expect_history_page(alice, "r", "\"after\":20", 1, 0, FALSE);
	expect_history_page(alice, "r", "\"after\":0", 1, 20, FALSE);
	expect_history_page(alice, "r", "\"after\":99", 1, 0, FALSE);
}

static void
test_history_bad(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *ws = fx_client(fx, "alice");
	const gchar *bad[] = {
	    "\"room\":\"r\",\"before\":5,\"after\":1",
	    "\"room\":\"r\",\"before\":5,\"after\":0",
	    "\"room\":\"r\",\"limit\":0",
	    "\"room\":\"r\",\"limit\":-1",
	    "\"room\":\"r\",\"before\":-1",
	    "\"room\":\"r\",\"after\":\"1\"",
	    "\"room\":\"r\",\"with\":\"alice\"",
	    "\"limit\":5",
	};

	join(ws, "r");
	fill_room(ws, "r", 3);
	for (guint i = 0; i < G_N_ELEMENTS(bad); i++) {
		codechat_test_note("history %s", bad[i]);
		codechat_test_ws_sendf(ws, "{\"type\":\"history\",%s,\"ref\":\"b%u\"}", bad[i], i);
		{
			g_autofree gchar *ref = g_strdup_printf("b%u", i);
			expect_error(ws, "bad-request", ref);
		}
	}
	codechat_test_ws_send_text(ws, "{\"type\":\"history\",\"room\":\"R\",\"ref\":\"br\"}");
	expect_error(ws, "bad-room", "br");
	barrier(ws);
}

/* ------------------------------------------------------------------ */
/* direct messages */

static void
test_direct(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *carol = fx_client(fx, "carol");
	g_autoptr(JsonObject) copy = NULL;
	g_autoptr(JsonObject) copy2 = NULL;
	g_autoptr(JsonObject) ha = NULL;
	g_autoptr(JsonObject) hb = NULL;
	g_autoptr(JsonObject) hc = NULL;
	JsonArray *messages;

	/* room ids do not affect conversation ids */
	join(alice, "r");
	fill_room(alice, "r", 3);

	g_assert_cmpint(dm(alice, "alice", "bob", "psst", "d1"), ==, 1);
	copy = codechat_test_ws_expect(bob, "message");
	g_assert_cmpint(assert_message(copy, NULL, "bob", "alice", "psst", NULL), ==, 1);
	g_assert_cmpstr(codechat_test_json_string(copy, "kind"), ==, "text");

	/* the reply is in the same conversation */
	g_assert_cmpint(dm(bob, "bob", "alice", "what?", "d2"), ==, 2);
	copy2 = codechat_test_ws_expect(alice, "message");
	g_assert_cmpint(assert_message(copy2, NULL, "alice", "bob", "what?", NULL), ==, 2);

	/* a third session got nothing */
	barrier(carol);
	barrier(alice);
	barrier(bob);

	/* both sides find the conversation in history */
	ha = history(alice, "\"with\":\"bob\"", "ha");
	g_assert_cmpstr(codechat_test_json_string(ha, "with"), ==, "bob");
	g_assert_false(json_object_has_member(ha, "room"));
	messages = get_array(ha, "messages");
	g_assert_cmpuint(json_array_get_length(messages), ==, 2);
	assert_message(json_array_get_object_element(messages, 0),
		       NULL,
		       "bob",
		       "alice",
		       "psst",
		       NULL);
	assert_message(json_array_get_object_element(messages, 1),
		       NULL,
		       "alice",
		       "bob",
		       "what?",
		       NULL);
	g_assert_false(get_bool(ha, "more"));

	hb = history(bob, "\"with\":\"alice\"", "hb");
	g_assert_cmpstr(codechat_test_json_string(hb, "with"), ==, "alice");
	messages = get_array(hb, "messages");
	g_assert_cmpuint(json_array_get_length(messages), ==, 2);
	g_assert_cmpint(codechat_test_json_int(json_array_get_object_element(messages, 0), "id"),
			==,
			1);
	g_assert_cmpint(codechat_test_json_int(json_array_get_object_element(messages, 1), "id"),
			==,
			2);

	/* carol's conversation with alice is another one, and empty */
	hc = history(carol, "\"with\":\"alice\"", "hc");
	g_assert_cmpuint(json_array_get_length(get_array(hc, "messages")), ==, 0);
	g_assert_false(get_bool(hc, "more"));
	g_assert_cmpint(dm(carol, "carol", "alice", "hello", "d3"), ==, 1);
	{
		g_autoptr(JsonObject) copy3 = codechat_test_ws_expect(alice, "message");
		assert_message(copy3, NULL, "alice", "carol", "hello", NULL);
	}
	barrier(bob);
}

static void
test_direct_unknown(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");

	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"to\":\"nobody\",\"text\":\"hello?\",\"ref\":\"u\"}");
	expect_error(alice, "unknown-nick", "u");
	codechat_test_ws_send_text(alice,
				   "{\"type\":\"history\",\"with\":\"nobody\",\"ref\":\"h\"}");
	expect_error(alice, "unknown-nick", "h");
	/* a nick that is online is known, and so is one that has been */
	fx_drop(fx, fx_client(fx, "bob"));
	g_assert_cmpint(dm(alice, "alice", "bob", "hi", "k"), ==, 1);
	barrier(alice);
}

static void
test_direct_offline(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *bob2 = NULL;
	g_autoptr(JsonObject) hist = NULL;
	JsonArray *messages;

	join(alice, "lobby");
	join(bob, "lobby");
	expect_presence(alice, "lobby", "bob", "join");
	fx_drop(fx, bob);
	expect_presence(alice, "lobby", "bob", "quit");

	/* bob is known but offline: stored */
	g_assert_cmpint(dm(alice, "alice", "bob", "read this later", "off"), ==, 1);
	barrier(alice);

	bob2 = fx_client(fx, "bob");
	hist = history(bob2, "\"with\":\"alice\"", "h");
	messages = get_array(hist, "messages");
	g_assert_cmpuint(json_array_get_length(messages), ==, 1);
	assert_message(json_array_get_object_element(messages, 0),
		       NULL,
		       "bob",
		       "alice",
		       "read this later",
		       NULL);
}

/* a `history` page of a direct conversation whose messages are
 * "<prefix><id>": ids first..last */
static void
expect_direct_page(CodechatTestWs *ws,
		   const gchar *with,
		   const gchar *extra,
		   const gchar *prefix,
		   gint64 first,
		   gint64 last,
		   gboolean more)
{
	g_autofree gchar *args =
	    g_strdup_printf("\"with\":\"%s\"%s%s", with, extra[0] != '\0' ? "," : "", extra);
	g_autoptr(JsonObject) hist = history(ws, args, "h");
	JsonArray *messages = get_array(hist, "messages");
	guint n = last >= first ? (guint)(last - first + 1) : 0;

	codechat_test_note("history %s", args);
	g_assert_cmpstr(codechat_test_json_string(hist, "with"), ==, with);
	g_assert_false(json_object_has_member(hist, "room"));
	g_assert_cmpuint(json_array_get_length(messages), ==, n);
	for (guint i = 0; i < n; i++) {
		JsonObject *msg = json_array_get_object_element(messages, i);
		g_autofree gchar *text = g_strdup_printf("%s%" G_GINT64_FORMAT, prefix, first + i);
		g_assert_nonnull(msg);
		g_assert_cmpint(assert_message(msg,
					       NULL,
					       codechat_test_json_string(msg, "to"),
					       NULL,
					       text,
					       NULL),
				==,
				first + i);
	}
	g_assert_cmpint(get_bool(hist, "more"), ==, more);
}

static void
test_direct_privacy(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *carol = fx_client(fx, "carol");
	g_autoptr(JsonObject) rooms = NULL;
	JsonArray *list;

	/* carol shares a room with both, which changes nothing */
	join(alice, "r");
	join(bob, "r");
	join(carol, "r");
	expect_presence(alice, "r", "bob", "join");
	expect_presence(alice, "r", "carol", "join");
	expect_presence(bob, "r", "carol", "join");

	for (guint i = 1; i <= 3; i++) {
		g_autofree gchar *text = g_strdup_printf("p%u", i);
		g_autoptr(JsonObject) copy = NULL;
		g_assert_cmpint(dm(alice, "alice", "bob", text, "d"), ==, i);
		copy = codechat_test_ws_expect(bob, "message");
		assert_message(copy, NULL, "bob", "alice", text, NULL);
	}
	/* the copies went out before the acknowledgements: carol has none */
	barrier(carol);
	barrier(bob);

	/* whoever carol names, she reads her own conversation only */
	expect_direct_page(carol, "alice", "", "p", 1, 0, FALSE);
	expect_direct_page(carol, "bob", "", "p", 1, 0, FALSE);
	expect_direct_page(carol, "bob", "\"after\":0", "p", 1, 0, FALSE);
	expect_direct_page(carol, "alice", "\"before\":4", "p", 1, 0, FALSE);
	/* and the conversation is no room */
	codechat_test_ws_send_text(
	    carol,
	    "{\"type\":\"history\",\"room\":\"dm:alice:bob\",\"ref\":\"x\"}");
	expect_error(carol, "bad-room", "x");
	codechat_test_ws_send_text(carol,
				   "{\"type\":\"join\",\"room\":\"dm:alice:bob\",\"ref\":\"y\"}");
	expect_error(carol, "bad-room", "y");
	codechat_test_ws_send_text(carol, "{\"type\":\"rooms\",\"ref\":\"z\"}");
	rooms = codechat_test_ws_expect(carol, "rooms");
	list = get_array(rooms, "rooms");
	for (guint i = 0; i < json_array_get_length(list); i++) {
		JsonObject *room = json_array_get_object_element(list, i);
		g_assert_null(strchr(codechat_test_json_string(room, "name"), ':'));
	}

	/* a direct message to oneself is one's own conversation */
	g_assert_cmpint(dm(carol, "carol", "carol", "note to self", "s"), ==, 1);
	barrier(carol);
	barrier(alice);
	barrier(bob);
	expect_direct_page(alice, "bob", "", "p", 1, 3, FALSE);
	expect_direct_page(bob, "alice", "", "p", 1, 3, FALSE);
}

static void
test_direct_paging(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	const guint n = 60;

	/* a room beside it counts its own ids */
	join(alice, "r");
	fill_room(alice, "r", 7);
	for (guint i = 1; i <= n; i++)
		codechat_test_ws_sendf(
		    alice,
		    "{\"type\":\"say\",\"to\":\"bob\",\"text\":\"d%u\",\"ref\":\"d%u\"}",
		    i,
		    i);
	for (guint i = 1; i <= n; i++) {
		g_autoptr(JsonObject) ack = codechat_test_ws_expect(alice, "message");
		g_autoptr(JsonObject) copy = codechat_test_ws_expect(bob, "message");
		g_autofree gchar *text = g_strdup_printf("d%u", i);
		g_autofree gchar *ref = g_strdup_printf("d%u", i);
		g_assert_cmpint(assert_message(ack, NULL, "bob", "alice", text, ref), ==, i);
		g_assert_cmpint(assert_message(copy, NULL, "bob", "alice", text, NULL), ==, i);
	}

	expect_direct_page(alice, "bob", "", "d", 11, 60, TRUE);
	expect_direct_page(alice, "bob", "\"limit\":60", "d", 1, 60, FALSE);
	expect_direct_page(alice, "bob", "\"limit\":10", "d", 51, 60, TRUE);
	expect_direct_page(alice, "bob", "\"before\":51,\"limit\":10", "d", 41, 50, TRUE);
	expect_direct_page(alice, "bob", "\"before\":6,\"limit\":10", "d", 1, 5, FALSE);
	expect_direct_page(alice, "bob", "\"before\":1", "d", 1, 0, FALSE);
	expect_direct_page(alice, "bob", "\"after\":0,\"limit\":10", "d", 1, 10, TRUE);
	expect_direct_page(alice, "bob", "\"after\":50,\"limit\":10", "d", 51, 60, FALSE);
	expect_direct_page(alice, "bob", "\"after\":55", "d", 56, 60, FALSE);
	expect_direct_page(alice, "bob", "\"after\":60", "d", 1, 0, FALSE);
	/* the same conversation from the other side, whatever the case */
	expect_direct_page(bob, "alice", "\"limit\":5", "d", 56, 60, TRUE);
	expect_direct_page(bob, "ALICE", "\"before\":3", "d", 1, 2, FALSE);
	expect_history_page(alice, "r", "", 1, 7, FALSE);
}

/* ------------------------------------------------------------------ */
/* rate limiting */

static void
burst(CodechatTestWs *ws, guint n, guint *ok_out, guint *limited_out, gdouble *elapsed_out)
{
	gint64 start = g_get_monotonic_time();
	guint ok = 0;
	guint limited = 0;

	for (guint i = 0; i < n; i++)
		codechat_test_ws_sendf(
		    ws,
		    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"burst %u\",\"ref\":\"b%u\"}",
		    i,
		    i);
	for (guint i = 0; i < n; i++) {
		g_autoptr(JsonObject) obj = codechat_test_ws_recv(ws, T);
		g_autofree gchar *ref = g_strdup_printf("b%u", i);
		const gchar *type;

		g_assert_nonnull(obj);
		type = codechat_test_json_string(obj, "type");
		assert_ref(obj, ref);
		if (g_strcmp0(type, "message") == 0) {
			ok++;
			/* rejected says take no id */
			g_assert_cmpint(codechat_test_json_int(obj, "id"), ==, ok);
		} else {
			g_assert_cmpstr(type, ==, "error");
			g_assert_cmpstr(codechat_test_json_string(obj, "code"), ==, "rate-limited");
			limited++;
		}
	}
	*ok_out = ok;
	*limited_out = limited;
	*elapsed_out = (gdouble)(g_get_monotonic_time() - start) / G_USEC_PER_SEC;
	codechat_test_note("%u accepted, %u limited in %.3f s", ok, limited, *elapsed_out);
}

static void
test_rate_limited(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	guint ok = 0;
	guint limited = 0;
	gdouble elapsed = 0;
	g_autoptr(JsonObject) msg = NULL;

	join(alice, "r");
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");
	burst(alice, 60, &ok, &limited, &elapsed);
	g_assert_cmpuint(ok + limited, ==, 60);
	g_assert_cmpuint(ok, >=, CODECHAT_DEFAULT_BURST);
	g_assert_cmpuint(limited, >=, 1);
	g_assert_cmpuint(ok,
			 <=,
			 CODECHAT_DEFAULT_BURST + (guint)(elapsed * CODECHAT_DEFAULT_RATE) + 1);

	/* other requests are not limited, nor are other sessions */
	barrier(alice);
	for (guint i = 0; i < ok; i++) {
		g_autoptr(JsonObject) copy = codechat_test_ws_expect(bob, "message");
		g_assert_cmpint(codechat_test_json_int(copy, "id"), ==, i + 1);
	}
	msg = say_full(bob, "r", "not limited", "bob1");
	g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, ok + 1);
}

static void
test_rate_off(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	guint ok = 0;
	guint limited = 0;
	gdouble elapsed = 0;

	join(alice, "r");
	burst(alice, 200, &ok, &limited, &elapsed);
	g_assert_cmpuint(ok, ==, 200);
	g_assert_cmpuint(limited, ==, 0);
}

static void
test_rate_custom(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(JsonObject) welcome = NULL;
	CodechatTestWs *alice = codechat_test_ws_new_client(fx->daemon->uri, "alice", &welcome);
	JsonObject *limits;
	guint ok = 0;
	guint limited = 0;
	gdouble elapsed = 0;

	g_ptr_array_add(fx->clients, alice);
	limits = json_object_get_object_member(welcome, "limits");
	g_assert_nonnull(limits);
	g_assert_cmpint(codechat_test_json_int(limits, "rate"), ==, 5);
	g_assert_cmpint(codechat_test_json_int(limits, "burst"), ==, 7);

	join(alice, "r");
	burst(alice, 12, &ok, &limited, &elapsed);
	g_assert_cmpuint(ok, >=, 7);
	g_assert_cmpuint(limited, >=, 1);
	g_assert_cmpuint(ok, <=, 7 + (guint)(elapsed * 5) + 1);
}

/* ------------------------------------------------------------------ */
/* closing */

static void
test_close_normal(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");

	join(alice, "r");
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");

	codechat_test_ws_close(bob, SOUP_WEBSOCKET_CLOSE_NORMAL);
	g_assert_cmpint(codechat_test_ws_wait_close(bob, T), ==, SOUP_WEBSOCKET_CLOSE_NORMAL);
	g_assert_false(codechat_test_ws_had_error(bob));
	g_assert_cmpuint(codechat_test_ws_pending(bob), ==, 0);
	expect_presence(alice, "r", "bob", "quit");

	/* the nick is free again */
	fx_client(fx, "bob");
	barrier(alice);
}

static void
test_close_signal(Fixture *fx, gint signum)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *anon = fx_connect(fx);

	join(alice, "r");
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");
	say(alice, "r", "bye");

	g_subprocess_send_signal(fx->daemon->proc, signum);
	g_assert_cmpint(codechat_test_ws_wait_close(alice, T), ==, SOUP_WEBSOCKET_CLOSE_GOING_AWAY);
	g_assert_cmpint(codechat_test_ws_wait_close(bob, T), ==, SOUP_WEBSOCKET_CLOSE_GOING_AWAY);
	g_assert_cmpint(codechat_test_ws_wait_close(anon, T), ==, SOUP_WEBSOCKET_CLOSE_GOING_AWAY);
	assert_daemon_exits_cleanly(fx);
}

static void
test_close_sigterm(Fixture *fx, gconstpointer user_data)
{
	test_close_signal(fx, SIGTERM);
}

static void
test_close_sigint(Fixture *fx, gconstpointer user_data)
{
	test_close_signal(fx, SIGINT);
}

static void
test_close_binary(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *anon = fx_connect(fx);
	const guint8 data[] = {'{', '}', 0x00, 0xff};

	codechat_test_ws_send_binary(alice, data, sizeof(data));
	g_assert_cmpint(codechat_test_ws_wait_close(alice, T),
			==,
			SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA);
	codechat_test_ws_send_binary(anon, data, sizeof(data));
	g_assert_cmpint(codechat_test_ws_wait_close(anon, T),
			==,
			SOUP_WEBSOCKET_CLOSE_UNSUPPORTED_DATA);
}

static void
test_close_invalid_utf8(Fixture *fx, gconstpointer user_data)
{
	CodechatTestRaw *raw = fx_raw_client(fx, "alice");
	CodechatTestRaw *anon = fx_raw(fx);
	CodechatTestRaw *split = fx_raw_client(fx, "bob");
	g_autoptr(JsonObject) pong = NULL;
	const gchar *bad = "{\"type\":\"ping\",\"x\":\"\xff\xfe\"}";
	/* a valid message whose "é" is split between two fragments */
	const gchar *part1 = "{\"type\":\"ping\",\"ref\":\"\xc3";
	const gchar *part2 = "\xa9\"}";

	g_assert_true(codechat_test_raw_send_frame(split,
						   FALSE,
						   CODECHAT_TEST_WS_OP_TEXT,
						   part1,
						   strlen(part1)));
	g_assert_true(codechat_test_raw_send_frame(split,
						   TRUE,
						   CODECHAT_TEST_WS_OP_CONT,
						   part2,
						   strlen(part2)));
	pong = codechat_test_raw_expect(split, "pong");
	g_assert_cmpstr(codechat_test_json_string(pong, "ref"), ==, "\xc3\xa9");

	codechat_test_raw_send_text(raw, bad);
	g_assert_cmpint(codechat_test_raw_wait_close(raw, T), ==, SOUP_WEBSOCKET_CLOSE_BAD_DATA);
	codechat_test_raw_send_text(anon, bad);
	g_assert_cmpint(codechat_test_raw_wait_close(anon, T), ==, SOUP_WEBSOCKET_CLOSE_BAD_DATA);
}

static void
test_close_too_big(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestRaw *raw = fx_raw_client(fx, "bob");
	g_autofree gchar *at_limit = codechat_test_padded_ping(CODECHAT_DEFAULT_MAX_FRAME);
	g_autofree gchar *over = codechat_test_padded_ping(CODECHAT_DEFAULT_MAX_FRAME + 1);
	g_autofree gchar *huge = codechat_test_padded_ping(1024 * 1024);
	g_autoptr(JsonObject) pong = NULL;

	g_assert_cmpuint(strlen(at_limit), ==, CODECHAT_DEFAULT_MAX_FRAME);
	codechat_test_ws_send_text(alice, at_limit);
	pong = codechat_test_ws_expect(alice, "pong");
	assert_ref(pong, "big");

	codechat_test_ws_send_text(alice, over);
	g_assert_cmpint(codechat_test_ws_wait_close(alice, T), ==, SOUP_WEBSOCKET_CLOSE_TOO_BIG);

	codechat_test_raw_send_text(raw, huge);
	g_assert_cmpint(codechat_test_raw_wait_close(raw, T), ==, SOUP_WEBSOCKET_CLOSE_TOO_BIG);
}

static void
test_close_too_big_huge(Fixture *fx, gconstpointer user_data)
{
	/* far over the limit: still a 1009 close, not a reset */
	CodechatTestRaw *raw = fx_raw_client(fx, "alice");
	g_autofree gchar *huge = codechat_test_padded_ping(4 * 1024 * 1024 + 1);

	codechat_test_raw_send_text(raw, huge);
	g_assert_cmpint(codechat_test_raw_wait_close(raw, T), ==, SOUP_WEBSOCKET_CLOSE_TOO_BIG);
}

static void
test_close_too_big_fragmented(Fixture *fx, gconstpointer user_data)
{
	/* the limit is on the message, whatever its fragments */
	CodechatTestRaw *small = fx_raw_client(fx, "alice");
	CodechatTestRaw *raw = fx_raw_client(fx, "bob");
	g_autoptr(JsonObject) pong = NULL;
	g_autofree gchar *ok = codechat_test_padded_ping(200 * 1024);
	g_autofree gchar *over = codechat_test_padded_ping(300 * 1024);
	gsize half = 100 * 1024;

	g_assert_true(
	    codechat_test_raw_send_frame(small, FALSE, CODECHAT_TEST_WS_OP_TEXT, ok, half));
	g_assert_true(codechat_test_raw_send_frame(small,
						   TRUE,
						   CODECHAT_TEST_WS_OP_CONT,
						   ok + half,
						   strlen(ok) - half));
	pong = codechat_test_raw_expect(small, "pong");

	codechat_test_raw_send_frame(raw, FALSE, CODECHAT_TEST_WS_OP_TEXT, over, 150 * 1024);
	codechat_test_raw_send_frame(raw,
				     TRUE,
				     CODECHAT_TEST_WS_OP_CONT,
				     over + 150 * 1024,
				     strlen(over) - 150 * 1024);
	g_assert_cmpint(codechat_test_raw_wait_close(raw, T), ==, SOUP_WEBSOCKET_CLOSE_TOO_BIG);
}

static void
test_close_overloaded(Fixture *fx, gconstpointer user_data)
{
	/* --max-connections 2 */
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *carol = NULL;

	/* the upgrade succeeds, then the refusal; first as seen on the
	 * wire, without libsoup's client in between */
	{
		CodechatTestRaw *raw = fx_raw(fx);
		g_autoptr(JsonObject) err = codechat_test_raw_expect(raw, "error");
		g_assert_cmpstr(codechat_test_json_string(err, "code"), ==, "overloaded");
		assert_ref(err, NULL);
		g_assert_cmpint(codechat_test_raw_wait_close(raw, T), ==, CLOSE_TRY_AGAIN_LATER);
	}
	/* a refused client that did not wait for replies gets nothing done:
	 * no nick, no join, no message */
	{
		CodechatTestRaw *eager = fx_raw(fx);
		g_autoptr(JsonObject) err = NULL;
		g_autoptr(JsonObject) hist = NULL;
		JsonArray *msgs;

		codechat_test_raw_send_text(eager, "{\"type\":\"hello\",\"nick\":\"eager\"}");
		codechat_test_raw_send_text(eager, "{\"type\":\"join\",\"room\":\"r\"}");
		codechat_test_raw_send_text(eager,
					    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"x\"}");
		err = codechat_test_raw_expect(eager, "error");
		g_assert_cmpstr(codechat_test_json_string(err, "code"), ==, "overloaded");
		g_assert_cmpint(codechat_test_raw_wait_close(eager, T), ==, CLOSE_TRY_AGAIN_LATER);
		codechat_test_ws_sendf(alice, "{\"type\":\"history\",\"room\":\"r\"}");
		hist = codechat_test_ws_expect(alice, "history");
		msgs = json_object_get_array_member(hist, "messages");
		g_assert_cmpuint(json_array_get_length(msgs), ==, 0);
	}
	carol = fx_connect(fx);
	expect_error(carol, "overloaded", NULL);
	g_assert_cmpint(codechat_test_ws_wait_close(carol, T), ==, CLOSE_TRY_AGAIN_LATER);
	g_assert_cmpuint(codechat_test_ws_pending(carol), ==, 0);

	/* the others are not affected, and a freed slot can be taken */
	join(alice, "r");
	join(bob, "r");
	expect_presence(alice, "r", "bob", "join");
	fx_drop(fx, bob);
	expect_presence(alice, "r", "bob", "quit");
	fx_client(fx, "dave");
	barrier(alice);
}

/* ------------------------------------------------------------------ */
/* keepalive */

static void
test_keepalive(Fixture *fx, gconstpointer user_data)
{
	/* --keepalive 1: pings every second, a peer silent for two
	 * intervals is dropped; the libsoup clients answer and stay */
	CodechatTestRaw *mute = fx_raw_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	CodechatTestWs *carol = fx_client(fx, "carol");
	gint64 start = g_get_monotonic_time();
	gint64 deadline = start + 8 * G_USEC_PER_SEC;
	gboolean never = FALSE;
	gint code = -1;

	codechat_test_raw_set_auto_pong(mute, FALSE);
	/* wait for the drop while the main context runs, so that the
	 * libsoup clients answer their pings */
	while (code == -1 && g_get_monotonic_time() < deadline) {
		code = codechat_test_raw_wait_close(mute, 50);
		codechat_test_pump_flag(&never, 50);
	}
	codechat_test_note("silent peer dropped with %d after %.1f s, %u pings",
			   code,
			   (gdouble)(g_get_monotonic_time() - start) / G_USEC_PER_SEC,
			   codechat_test_raw_get_pings(mute));
	g_assert_cmpint(code, !=, -1);
	g_assert_cmpuint(codechat_test_raw_get_pings(mute), >=, 1);
	g_assert_cmpint(g_get_monotonic_time() - start, >=, 1 * G_USEC_PER_SEC);

	/* the others answered and are still there */
	g_assert_true(codechat_test_ws_is_open(bob));
	g_assert_true(codechat_test_ws_is_open(carol));
	barrier(bob);
	barrier(carol);
}

/* ------------------------------------------------------------------ */
/* restarts */

static void
test_restart(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) welcome2 = NULL;
	g_autoptr(JsonObject) joined = NULL;
	g_autoptr(CodechatTestDaemon) daemon2 = NULL;
	g_autofree gchar *epoch = NULL;
	pid_t pid2;
	CodechatTestWs *alice = codechat_test_ws_new_client(fx->daemon->uri, "alice", &welcome);
	CodechatTestWs *bob = fx_client(fx, "bob");
	const gchar *args[] = {"--data-dir", fx->daemon->data_dir, NULL};

	g_ptr_array_add(fx->clients, alice);
	epoch = g_strdup(codechat_test_json_string(welcome, "epoch"));
	join(alice, "r");
	fill_room(alice, "r", 3);
	g_assert_cmpint(dm(alice, "alice", "bob", "before", "d"), ==, 1);
	{
		g_autoptr(JsonObject) copy = codechat_test_ws_expect(bob, "message");
		(void)copy;
	}
	fixture_close_clients(fx);
	g_assert_cmpint(codechat_test_daemon_stop(fx->daemon), ==, 0);
	fx->stopped = TRUE;

	/* the same data dir (the last --data-dir wins) */
	daemon2 = codechat_test_daemon_start(args);
	pid2 = pids_track(daemon2);
	alice = codechat_test_ws_new_client(daemon2->uri, "alice", &welcome2);
	g_ptr_array_add(fx->clients, alice);
	g_assert_cmpstr(codechat_test_json_string(welcome2, "epoch"), ==, epoch);
	joined = join_full(alice, "r", -1, "j");
	g_assert_cmpint(codechat_test_json_int(joined, "last_id"), ==, 3);
	g_assert_cmpstr(codechat_test_json_string(joined, "epoch"), ==, epoch);
	/* ids go on, never reused */
	g_assert_cmpint(say(alice, "r", "m4"), ==, 4);
	expect_history_page(alice, "r", "", 1, 4, FALSE);
	/* bob is remembered: offline but known */
	g_assert_cmpint(dm(alice, "alice", "bob", "after", "d2"), ==, 2);

	fixture_close_clients(fx);
	g_assert_cmpint(codechat_test_daemon_stop(daemon2), ==, 0);
	pids_untrack(pid2);
}

/* ------------------------------------------------------------------ */

static void
drop_debug(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user_data)
{
}

typedef void (*CaseFunc)(Fixture *fx, gconstpointer user_data);

typedef struct {
	const gchar *const *args; /* daemon arguments, NULL for no daemon */
	CaseFunc func;
} Case;

/* every case runs in a child process of its own (this program again,
 * with -p and CODECHAT_TEST_CHILD set): a failed assertion ends that case
 * only, and the next cases still run.  Not g_test_trap_subprocess(): its
 * children _exit() on a failed assertion, which skips abort_handler() and
 * leaves the daemon running with the log pipe open. */
static const gchar *self_path;
static gboolean in_child;

static void
child_wait_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	gboolean *done = user_data;

	g_subprocess_wait_finish(G_SUBPROCESS(source), res, NULL);
	*done = TRUE;
}

static void
run_case(gconstpointer data)
{
	const Case *c = data;
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GSubprocess) child = NULL;
	g_autoptr(GError) error = NULL;
	gboolean done = FALSE;

	if (in_child) {
		Fixture fx = {0};
		if (c->args != NULL)
			fixture_setup(&fx, c->args);
		c->func(&fx, c->args);
		if (c->args != NULL)
			fixture_teardown(&fx, c->args);
		return;
	}

	/* the child's TAP goes to stderr, so as not to mix with ours */
	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_NONE);
	g_subprocess_launcher_setenv(launcher, "CODECHAT_TEST_CHILD", "1", TRUE);
	g_subprocess_launcher_take_stdout_fd(launcher, dup(STDERR_FILENO));
	child =
	    g_subprocess_launcher_spawn(launcher, &error, self_path, "-p", g_test_get_path(), NULL);
	g_assert_no_error(error);
	g_subprocess_wait_async(child, NULL, child_wait_cb, &done);
	if (!codechat_test_pump_flag(&done, 60 * 1000)) {
		/* SIGABRT, so that it takes its daemons along */
		g_test_message("%s timed out", g_test_get_path());
		g_subprocess_send_signal(child, SIGABRT);
		codechat_test_pump_flag(&done, 10 * 1000);
	}
	if (!done || !g_subprocess_get_if_exited(child) ||
	    g_subprocess_get_exit_status(child) != 0) {
		g_test_message("%s failed in its child process: see its messages on stderr",
			       g_test_get_path());
		g_test_fail();
	}
}

static void
add(const gchar *path, const gchar *const *args, CaseFunc func)
{
	g_autofree gchar *full = g_strconcat("/codechat/daemon/", path, NULL);
	Case *c = g_new0(Case, 1);

	c->args = args;
	c->func = func;
	g_test_add_data_func_full(full, c, run_case, g_free);
}

#define ADD(path, args, func) add(path, args, func)

int
main(int argc, char **argv)
{
	struct sigaction sa;

	self_path = argv[0];
	in_child = g_getenv("CODECHAT_TEST_CHILD") != NULL;
	g_test_init(&argc, &argv, NULL);
	/* the parent only collects the verdicts of its children: one
	 * failed case must not stop the others */
	if (!in_child)
		g_test_set_nonfatal_assertions();

	/* GTest prints every unstructured debug message; libsoup's and GIO's
	 * would drown the log, so show them only when asked to */
	if (g_getenv("G_MESSAGES_DEBUG") == NULL) {
		const gchar *domains[] = {"libsoup", "GLib-GIO", "GLib", "Json"};
		for (guint i = 0; i < G_N_ELEMENTS(domains); i++)
			g_log_set_handler(domains[i], G_LOG_LEVEL_DEBUG, drop_debug, NULL);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = abort_handler;
	sigaction(SIGABRT, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);

	ADD("cli/version", NULL, test_cli_version);
	ADD("cli/help", NULL, test_cli_help);

	ADD("http/healthz", args_default, test_healthz);
	ADD("handshake/origin-default", args_default, test_origin_default);
	ADD("handshake/origin-allowed", args_origin, test_origin_allowed);
	ADD("handshake/subprotocol", args_default, test_subprotocol);

	ADD("hello/welcome", args_default, test_hello_welcome);
	ADD("hello/bad-json", args_default, test_hello_bad_json);
	ADD("hello/not-authenticated", args_default, test_hello_not_authenticated);
	ADD("hello/bad-nick", args_default, test_hello_bad_nick);
	ADD("hello/nick-taken", args_default, test_hello_nick_taken);
	ADD("hello/twice", args_default, test_hello_twice);
	ADD("hello/timeout", args_hello_timeout, test_hello_timeout);

	ADD("envelope/ping", args_default, test_ping);
	ADD("envelope/ref-echo", args_default, test_ref_echo);
	ADD("envelope/ref-limit", args_default, test_ref_limit);
	ADD("envelope/unknown-type", args_default, test_unknown_type);
	ADD("envelope/garbage", args_no_rate, test_garbage);
	ADD("envelope/deep-nesting", args_default, test_deep_nesting);

	ADD("room/join", args_default, test_join);
	ADD("room/join-twice", args_default, test_join_twice);
	ADD("room/bad-room", args_default, test_bad_room);
	ADD("room/part", args_default, test_part);
	ADD("room/presence", args_default, test_presence);
	ADD("room/who", args_default, test_who);
	ADD("room/rooms", args_default, test_rooms);

	ADD("message/two-clients", args_default, test_message_two);
	ADD("message/three-clients", args_default, test_message_three);
	ADD("message/ids", args_default, test_message_ids);
	ADD("message/kinds", args_default, test_message_kinds);
	ADD("message/text-limits", args_default, test_text_limits);
	ADD("message/filename", args_default, test_filename);
	ADD("message/not-joined", args_default, test_not_joined);

	ADD("resume/since", args_no_rate, test_resume_since);
	ADD("resume/race", args_no_rate, test_resume_race);
	ADD("resume/truncated", args_no_rate, test_resume_truncated);

	ADD("history/latest", args_no_rate, test_history_latest);
	ADD("history/limit", args_no_rate, test_history_limit);
	ADD("history/before", args_no_rate, test_history_before);
	ADD("history/after", args_no_rate, test_history_after);
	ADD("history/bad", args_default, test_history_bad);

	ADD("direct/deliver", args_default, test_direct);
	ADD("direct/unknown-nick", args_default, test_direct_unknown);
	ADD("direct/offline", args_default, test_direct_offline);
	ADD("direct/privacy", args_default, test_direct_privacy);
	ADD("direct/paging", args_no_rate, test_direct_paging);

	ADD("rate/limited", args_default, test_rate_limited);
	ADD("rate/off", args_no_rate, test_rate_off);
	ADD("rate/custom", args_rate_custom, test_rate_custom);

	ADD("close/normal", args_default, test_close_normal);
	ADD("close/sigterm", args_default, test_close_sigterm);
	ADD("close/sigint", args_default, test_close_sigint);
	ADD("close/binary", args_default, test_close_binary);
	ADD("close/invalid-utf8", args_default, test_close_invalid_utf8);
	ADD("close/too-big", args_default, test_close_too_big);
	ADD("close/too-big-fragmented", args_default, test_close_too_big_fragmented);
	ADD("close/too-big-huge", args_default, test_close_too_big_huge);
	ADD("close/overloaded", args_max_conn, test_close_overloaded);

	ADD("keepalive/drop", args_keepalive, test_keepalive);
	ADD("restart/persistence", args_default, test_restart);

	return g_test_run();
}
