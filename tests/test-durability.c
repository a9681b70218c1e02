/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <glib/gstdio.h>
#include <linux/capability.h>
#include <signal.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "codechat-protocol.h"
#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"

/*
 * Durability of codechatd's history, end to end: real daemons on one data
 * dir, stopped cleanly or killed with SIGKILL in the middle of bursts, and
 * restarted.  What a sender saw acknowledged must be in the history after
 * any restart, once, in order, with the id it was acknowledged with; ids go
 * on and are never reused; the epoch stays; a client that resumes with
 * join since gets exactly what it missed; direct messages stay between
 * their two nicks; and a data dir that cannot be used stops the daemon at
 * start with exit status 1 and a message naming the path.
 */

#define T CODECHAT_TEST_TIMEOUT_MS

/* the room most cases talk in */
#define ROOM "log"

/* a failed assertion must not leave daemons behind: the abort handler
 * kills the ones we started */
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
pids_track_id(const gchar *id)
{
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

static void
die_with_parent(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

/* ------------------------------------------------------------------ */
/* files */

static void
rm_rf(const gchar *path)
{
	if (g_file_test(path, G_FILE_TEST_IS_DIR) && !g_file_test(path, G_FILE_TEST_IS_SYMLINK)) {
		g_autoptr(GDir) dir = g_dir_open(path, 0, NULL);
		const gchar *name;

		while (dir != NULL && (name = g_dir_read_name(dir)) != NULL) {
			g_autofree gchar *child = g_build_filename(path, name, NULL);
			rm_rf(child);
		}
		g_rmdir(path);
	} else {
		g_unlink(path);
	}
}

static gchar *
db_path(const gchar *dir)
{
	return g_build_filename(dir, "codechat.db", NULL);
}

static void
write_file(const gchar *path, gconstpointer data, gsize len)
{
	g_autoptr(GError) error = NULL;

	g_file_set_contents(path, data, (gssize)len, &error);
	g_assert_no_error(error);
}

static GBytes *
read_file(const gchar *path)
{
	g_autoptr(GError) error = NULL;
	gchar *data = NULL;
	gsize len = 0;

	g_file_get_contents(path, &data, &len, &error);
	g_assert_no_error(error);
	return g_bytes_new_take(data, len);
}

/* ------------------------------------------------------------------ */
/* the fixture: a data dir that outlives the daemons started on it; each
 * daemon gets it with --data-dir after the one that
 * codechat_test_daemon_start() passes (the last one wins), so that the
 * helper's own temporary dir stays unused */

typedef struct {
	gchar *dir;		    /* (owned) */
	CodechatTestDaemon *daemon; /* (owned) (nullable) the running daemon */
	pid_t pid;
	GPtrArray *clients; /* (owned) (element-type CodechatTestWs) of that daemon */
} Fixture;

static void
fx_start_with(Fixture *fx, const gchar *const *extra)
{
	g_autoptr(GPtrArray) args = g_ptr_array_new();

	g_assert_null(fx->daemon);
	g_ptr_array_add(args, (gpointer) "--data-dir");
	g_ptr_array_add(args, fx->dir);
	g_ptr_array_add(args, (gpointer) "--rate-limit");
	g_ptr_array_add(args, (gpointer) "0");
	for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
		g_ptr_array_add(args, (gpointer)extra[i]);
	g_ptr_array_add(args, NULL);
	fx->daemon = codechat_test_daemon_start((const gchar *const *)args->pdata);
	fx->pid = pids_track_id(g_subprocess_get_identifier(fx->daemon->proc));
}

static void
fx_start(Fixture *fx)
{
	fx_start_with(fx, NULL);
}

static void
fx_close_clients(Fixture *fx)
{
	g_ptr_array_set_size(fx->clients, 0);
}

/* SIGTERM: the daemon must exit with 0 */
static void
fx_stop(Fixture *fx)
{
	fx_close_clients(fx);
	g_assert_cmpint(codechat_test_daemon_stop(fx->daemon), ==, 0);
	pids_untrack(fx->pid);
	g_clear_pointer(&fx->daemon, codechat_test_daemon_free);
}

/* SIGKILL, and wait for it; the clients stay, to be drained */
static void
fx_kill(Fixture *fx)
{
	g_autoptr(GError) error = NULL;

	g_subprocess_force_exit(fx->daemon->proc);
	g_subprocess_wait(fx->daemon->proc, NULL, &error);
	g_assert_no_error(error);
	g_assert_true(g_subprocess_get_if_signaled(fx->daemon->proc));
	g_assert_cmpint(g_subprocess_get_term_sig(fx->daemon->proc), ==, SIGKILL);
	pids_untrack(fx->pid);
	g_clear_pointer(&fx->daemon, codechat_test_daemon_free);
}

static void
fx_kill_and_close(Fixture *fx)
{
	fx_kill(fx);
	fx_close_clients(fx);
}

static CodechatTestWs *
fx_client_welcome(Fixture *fx, const gchar *nick, JsonObject **welcome)
{
	CodechatTestWs *ws = codechat_test_ws_new_client(fx->daemon->uri, nick, welcome);
	g_ptr_array_add(fx->clients, ws);
	return ws;
}

static CodechatTestWs *
fx_client(Fixture *fx, const gchar *nick)
{
	return fx_client_welcome(fx, nick, NULL);
}

/* closes a client and waits until the daemon answered the close */
static void
fx_drop(Fixture *fx, CodechatTestWs *ws)
{
	codechat_test_ws_close(ws, SOUP_WEBSOCKET_CLOSE_NORMAL);
	g_assert_cmpint(codechat_test_ws_wait_close(ws, T), ==, SOUP_WEBSOCKET_CLOSE_NORMAL);
	g_ptr_array_remove(fx->clients, ws);
}

static void
fixture_setup(Fixture *fx)
{
	g_autoptr(GError) error = NULL;

	fx->dir = g_dir_make_tmp("codechat-durability-XXXXXX", &error);
	g_assert_no_error(error);
	fx->clients = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_ws_free);
}

static void
fixture_teardown(Fixture *fx)
{
	fx_close_clients(fx);
	if (fx->daemon != NULL)
		fx_stop(fx);
	g_clear_pointer(&fx->clients, g_ptr_array_unref);
	rm_rf(fx->dir);
	g_free(fx->dir);
}

/* ------------------------------------------------------------------ */
/* JSON and requests */

static gchar *
quote(const gchar *str)
{
	g_autoptr(JsonNode) node = json_node_new(JSON_NODE_VALUE);

	json_node_set_string(node, str);
	return json_to_string(node, FALSE);
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

static const gchar *
type_of(JsonObject *obj)
{
	return codechat_test_json_string(obj, "type");
}

static void
assert_ref(JsonObject *obj, const gchar *ref)
{
	if (ref == NULL)
		g_assert_false(json_object_has_member(obj, "ref"));
	else
		g_assert_cmpstr(codechat_test_json_string(obj, "ref"), ==, ref);
}

static gchar *
to_string(JsonObject *obj)
{
	g_autoptr(JsonNode) node = json_node_init_object(json_node_alloc(), obj);
	return json_to_string(node, FALSE);
}

/* the next frame, skipping presence events (bursts make many of them) */
static JsonObject *
recv_skip_presence(CodechatTestWs *ws, guint timeout_ms)
{
	for (;;) {
		JsonObject *obj = codechat_test_ws_recv(ws, timeout_ms);
		if (obj == NULL || g_strcmp0(type_of(obj), "presence") != 0)
			return obj;
		json_object_unref(obj);
	}
}

static JsonObject *
expect_skip_presence(CodechatTestWs *ws, const gchar *type)
{
	JsonObject *obj = recv_skip_presence(ws, T);

	if (obj == NULL)
		codechat_test_note("expected a \"%s\", got nothing", type);
	g_assert_nonnull(obj);
	if (g_strcmp0(type_of(obj), type) != 0) {
		g_autofree gchar *text = to_string(obj);
		codechat_test_note("expected a \"%s\", got %.500s", type, text);
	}
	g_assert_cmpstr(type_of(obj), ==, type);
	return obj;
}

/* proves that nothing else is queued for @ws: everything sent to it
 * before the ping arrives before the pong */
static void
barrier(CodechatTestWs *ws)
{
	g_autoptr(JsonObject) pong = NULL;

	codechat_test_ws_send_ping(ws, "barrier");
	pong = codechat_test_ws_expect(ws, "pong");
	assert_ref(pong, "barrier");
}

static JsonObject *
join_full(CodechatTestWs *ws, const gchar *room, gint64 since)
{
	JsonObject *joined;

	if (since >= 0)
		codechat_test_ws_sendf(
		    ws,
		    "{\"type\":\"join\",\"room\":\"%s\",\"since\":%" G_GINT64_FORMAT
		    ",\"ref\":\"j\"}",
		    room,
		    since);
	else
		codechat_test_ws_sendf(ws,
				       "{\"type\":\"join\",\"room\":\"%s\",\"ref\":\"j\"}",
				       room);
	joined = expect_skip_presence(ws, "joined");
	g_assert_cmpstr(codechat_test_json_string(joined, "room"), ==, room);
	assert_ref(joined, "j");
	return joined;
}

static void
join(CodechatTestWs *ws, const gchar *room)
{
	g_autoptr(JsonObject) joined = join_full(ws, room, -1);
	(void)joined;
}

static void
send_say(CodechatTestWs *ws, const gchar *room, const gchar *text, const gchar *ref)
{
	g_autofree gchar *qtext = quote(text);

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"room\":\"%s\",\"text\":%s,\"ref\":\"%s\"}",
			       room,
			       qtext,
			       ref);
}

/* says @text and returns the id of its acknowledgement */
static gint64
say(CodechatTestWs *ws, const gchar *room, const gchar *text)
{
	g_autoptr(JsonObject) ack = NULL;

	send_say(ws, room, text, "s");
	ack = expect_skip_presence(ws, "message");
	assert_ref(ack, "s");
	g_assert_cmpstr(codechat_test_json_string(ack, "room"), ==, room);
	g_assert_cmpstr(codechat_test_json_string(ack, "text"), ==, text);
	return codechat_test_json_int(ack, "id");
}

static gint64
dm(CodechatTestWs *ws, const gchar *to, const gchar *text, const gchar *ref)
{
	g_autoptr(JsonObject) ack = NULL;
	g_autofree gchar *qtext = quote(text);

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"to\":\"%s\",\"text\":%s,\"ref\":\"%s\"}",
			       to,
			       qtext,
			       ref);
	ack = expect_skip_presence(ws, "message");
	assert_ref(ack, ref);
	g_assert_cmpstr(codechat_test_json_string(ack, "to"), ==, to);
	g_assert_null(codechat_test_json_string(ack, "room"));
	g_assert_cmpstr(codechat_test_json_string(ack, "text"), ==, text);
	return codechat_test_json_int(ack, "id");
}

static void
expect_error(CodechatTestWs *ws, const gchar *code, const gchar *ref)
{
	g_autoptr(JsonObject) err = codechat_test_ws_expect_error(ws, code, ref);
	(void)err;
}

/* posts @n messages pipelined, which must get the ids first..first+n-1;
 * the text of each is "<prefix><id>" */
static void
fill_room(CodechatTestWs *ws, const gchar *room, const gchar *prefix, guint n, gint64 first)
{
	for (gint64 id = first; id < first + n; id++) {
		g_autofree gchar *text = g_strdup_printf("%s%" G_GINT64_FORMAT, prefix, id);
		g_autofree gchar *ref = g_strdup_printf("f%" G_GINT64_FORMAT, id);
		send_say(ws, room, text, ref);
	}
	for (gint64 id = first; id < first + n; id++) {
		g_autoptr(JsonObject) ack = expect_skip_presence(ws, "message");
		g_autofree gchar *text = g_strdup_printf("%s%" G_GINT64_FORMAT, prefix, id);
		g_autofree gchar *ref = g_strdup_printf("f%" G_GINT64_FORMAT, id);
		assert_ref(ack, ref);
		g_assert_cmpstr(codechat_test_json_string(ack, "text"), ==, text);
		g_assert_cmpint(codechat_test_json_int(ack, "id"), ==, id);
	}
}

static JsonObject *
history(CodechatTestWs *ws, const gchar *args)
{
	JsonObject *hist;

	codechat_test_ws_sendf(ws, "{\"type\":\"history\",%s,\"ref\":\"h\"}", args);
	hist = expect_skip_presence(ws, "history");
	assert_ref(hist, "h");
	return hist;
}

/* every message of @room, oldest first, paging forward with after */
static GPtrArray *
read_room(CodechatTestWs *ws, const gchar *room)
{
	GPtrArray *all = g_ptr_array_new_with_free_func((GDestroyNotify)json_object_unref);
	gint64 after = 0;
	gboolean more = TRUE;

	while (more) {
		g_autofree gchar *args =
		    g_strdup_printf("\"room\":\"%s\",\"after\":%" G_GINT64_FORMAT ",\"limit\":500",
				    room,
				    after);
		g_autoptr(JsonObject) hist = history(ws, args);
		JsonArray *msgs = get_array(hist, "messages");

		more = get_bool(hist, "more");
		g_assert_true(json_array_get_length(msgs) > 0 || !more);
		for (guint i = 0; i < json_array_get_length(msgs); i++) {
			JsonObject *msg = json_array_get_object_element(msgs, i);
			gint64 id = codechat_test_json_int(msg, "id");
			g_assert_cmpint(id, >, after);
			after = id;
			g_ptr_array_add(all, json_object_ref(msg));
		}
	}
	return all;
}

/* the next frames are messages of @room with ids first..last and texts
 * "<prefix><id>", without ref */
static void
expect_messages(CodechatTestWs *ws,
		const gchar *room,
		const gchar *prefix,
		gint64 first,
		gint64 last)
{
	for (gint64 id = first; id <= last; id++) {
		g_autoptr(JsonObject) msg = expect_skip_presence(ws, "message");
		g_autofree gchar *text = g_strdup_printf("%s%" G_GINT64_FORMAT, prefix, id);
		g_assert_cmpstr(codechat_test_json_string(msg, "room"), ==, room);
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, id);
		g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, text);
		assert_ref(msg, NULL);
	}
}

/* ------------------------------------------------------------------ */
/* a) restarts */

static void
test_restart(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) welcome2 = NULL;
	g_autoptr(JsonObject) joined = NULL;
	g_autoptr(JsonObject) code = NULL;
	g_autoptr(GPtrArray) before = NULL;
	g_autoptr(GPtrArray) after = NULL;
	g_autofree gchar *epoch = NULL;
	g_autofree gchar *path = db_path(fx->dir);
	CodechatTestWs *alice;
	CodechatTestWs *bob;
	CodechatTestWs *reader;

	fx_start(fx);
	alice = fx_client_welcome(fx, "alice", &welcome);
	bob = fx_client(fx, "bob");
	epoch = g_strdup(codechat_test_json_string(welcome, "epoch"));
	g_assert_nonnull(epoch);
	g_assert_cmpstr(epoch, !=, "");
	g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));

	join(alice, ROOM);
	fill_room(alice, ROOM, "m", 3, 1);
	codechat_test_ws_send_text(alice,
				   "{\"type\":\"say\",\"room\":\"" ROOM "\",\"kind\":\"code\","
				   "\"lang\":\"c\",\"filename\":\"main.c\","
				   "\"text\":\"int main(void);\\n\",\"ref\":\"k\"}");
	code = codechat_test_ws_expect(alice, "message");
	g_assert_cmpint(codechat_test_json_int(code, "id"), ==, 4);
	g_assert_cmpint(dm(alice, "bob", "before", "d1"), ==, 1);
	{
		g_autoptr(JsonObject) copy = codechat_test_ws_expect(bob, "message");
		g_assert_cmpint(codechat_test_json_int(copy, "id"), ==, 1);
	}
	reader = fx_client(fx, "reader");
	before = read_room(reader, ROOM);
	g_assert_cmpuint(before->len, ==, 4);
	fx_stop(fx);

	/* the second daemon on the same data dir */
	fx_start(fx);
	alice = fx_client_welcome(fx, "alice", &welcome2);
	g_assert_cmpstr(codechat_test_json_string(welcome2, "epoch"), ==, epoch);
	joined = join_full(alice, ROOM, -1);
	g_assert_cmpint(codechat_test_json_int(joined, "last_id"), ==, 4);
	g_assert_cmpstr(codechat_test_json_string(joined, "epoch"), ==, epoch);
	/* the history is the same, member for member */
	reader = fx_client(fx, "reader");
	after = read_room(reader, ROOM);
	g_assert_cmpuint(after->len, ==, before->len);
	for (guint i = 0; i < after->len; i++) {
		g_autofree gchar *a = to_string(g_ptr_array_index(after, i));
		g_autofree gchar *b = to_string(g_ptr_array_index(before, i));
		g_assert_cmpstr(a, ==, b);
	}
	g_assert_cmpstr(codechat_test_json_string(g_ptr_array_index(after, 3), "lang"), ==, "c");
	g_assert_cmpstr(codechat_test_json_string(g_ptr_array_index(after, 3), "filename"),
			==,
			"main.c");
	g_assert_null(codechat_test_json_string(g_ptr_array_index(after, 0), "lang"));
	/* ids go on, never reused */
	g_assert_cmpint(say(alice, ROOM, "m5"), ==, 5);
	/* bob is offline but known from before the restart */
	g_assert_cmpint(dm(alice, "bob", "after", "d2"), ==, 2);
	{
		g_autoptr(JsonObject) rooms = NULL;
		JsonArray *list;
		gboolean found = FALSE;

		codechat_test_ws_send_text(reader, "{\"type\":\"rooms\"}");
		rooms = codechat_test_ws_expect(reader, "rooms");
		list = get_array(rooms, "rooms");
		for (guint i = 0; i < json_array_get_length(list); i++) {
			JsonObject *room = json_array_get_object_element(list, i);
			const gchar *name = codechat_test_json_string(room, "name");
			g_assert_false(g_str_has_prefix(name, "dm:"));
			if (g_strcmp0(name, ROOM) == 0) {
				found = TRUE;
				g_assert_cmpint(codechat_test_json_int(room, "last_id"), ==, 5);
			}
		}
		g_assert_true(found);
	}
	fx_stop(fx);

	/* a third time, after a restart that found nothing new to do */
	fx_start(fx);
	{
		g_autoptr(JsonObject) welcome3 = NULL;
		g_autoptr(JsonObject) hist = NULL;
		alice = fx_client_welcome(fx, "alice", &welcome3);
		g_assert_cmpstr(codechat_test_json_string(welcome3, "epoch"), ==, epoch);
		hist = history(alice, "\"with\":\"bob\"");
		g_assert_cmpuint(json_array_get_length(get_array(hist, "messages")), ==, 2);
		join(alice, ROOM);
		g_assert_cmpint(say(alice, ROOM, "m6"), ==, 6);
	}
	fx_stop(fx);
}

static void
test_new_epoch(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) welcome2 = NULL;
	g_autoptr(CodechatTestDaemon) other = NULL;
	const gchar *const args[] = {"--rate-limit", "0", NULL};
	pid_t pid;

	fx_start(fx);
	fx_client_welcome(fx, "alice", &welcome);
	/* a daemon on another, new data dir has a store of its own */
	other = codechat_test_daemon_start(args);
	pid = pids_track_id(g_subprocess_get_identifier(other->proc));
	codechat_test_ws_free(codechat_test_ws_new_client(other->uri, "alice", &welcome2));
	g_assert_nonnull(codechat_test_json_string(welcome2, "epoch"));
	g_assert_cmpstr(codechat_test_json_string(welcome2, "epoch"),
			!=,
			codechat_test_json_string(welcome, "epoch"));
	g_assert_cmpint(codechat_test_daemon_stop(other), ==, 0);
	pids_untrack(pid);
}

static void
test_sync_normal(Fixture *fx, gconstpointer user_data)
{
	const gchar *const normal[] = {"--sync", "normal", NULL};
	const gchar *const full[] = {"--sync", "full", NULL};
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(GPtrArray) all = NULL;
	g_autofree gchar *epoch = NULL;
	CodechatTestWs *alice;

	/* normal survives a crash of the process, which is what SIGKILL is */
	fx_start_with(fx, normal);
	alice = fx_client_welcome(fx, "alice", &welcome);
	epoch = g_strdup(codechat_test_json_string(welcome, "epoch"));
	join(alice, ROOM);
	fill_room(alice, ROOM, "m", 20, 1);
	fx_kill_and_close(fx);

	fx_start_with(fx, full);
	alice = fx_client(fx, "alice");
	all = read_room(alice, ROOM);
	g_assert_cmpuint(all->len, ==, 20);
	join(alice, ROOM);
	g_assert_cmpint(say(alice, ROOM, "m21"), ==, 21);
	fx_stop(fx);

	fx_start_with(fx, normal);
	{
		g_autoptr(JsonObject) welcome2 = NULL;
		alice = fx_client_welcome(fx, "alice", &welcome2);
		g_assert_cmpstr(codechat_test_json_string(welcome2, "epoch"), ==, epoch);
		join(alice, ROOM);
		g_assert_cmpint(say(alice, ROOM, "m22"), ==, 22);
	}
	fx_stop(fx);
}

static void
test_sigterm_in_flight(Fixture *fx, gconstpointer user_data)
{
	/* SIGTERM in the middle of a burst: the daemon flushes the store
	 * and exits with 0; what was acknowledged is there, and the history
	 * is the burst's first messages, in order */
	const guint n = 1000;
	g_autoptr(GPtrArray) all = NULL;
	CodechatTestWs *alice;
	gint64 acked = 0;
	gint code;

	fx_start(fx);
	alice = fx_client(fx, "alice");
	join(alice, ROOM);
	for (guint i = 1; i <= n; i++) {
		g_autofree gchar *text = g_strdup_printf("m%u", i);
		send_say(alice, ROOM, text, "r");
	}
	while (acked < 20) {
		g_autoptr(JsonObject) ack = expect_skip_presence(alice, "message");
		g_assert_cmpint(codechat_test_json_int(ack, "id"), ==, ++acked);
	}
	g_subprocess_send_signal(fx->daemon->proc, SIGTERM);
	for (;;) {
		g_autoptr(JsonObject) obj = codechat_test_ws_recv(alice, T);
		if (obj == NULL)
			break;
		g_assert_cmpstr(type_of(obj), ==, "message");
		g_assert_cmpint(codechat_test_json_int(obj, "id"), ==, ++acked);
	}
	code = codechat_test_ws_wait_close(alice, T);
	codechat_test_note("%" G_GINT64_FORMAT " of %u acknowledged before the close (%d)",
			   acked,
			   n,
			   code);
	g_assert_cmpint(code, ==, SOUP_WEBSOCKET_CLOSE_GOING_AWAY);
	fx_stop(fx);

	fx_start(fx);
	alice = fx_client(fx, "alice");
	all = read_room(alice, ROOM);
	codechat_test_note("%u stored", all->len);
	g_assert_cmpint(all->len, >=, acked);
	for (guint i = 0; i < all->len; i++) {
		g_autofree gchar *text = g_strdup_printf("m%u", i + 1);
		JsonObject *msg = g_ptr_array_index(all, i);
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, i + 1);
		g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, text);
	}
	join(alice, ROOM);
	g_assert_cmpint(say(alice, ROOM, "next"), ==, all->len + 1);
}

/* ------------------------------------------------------------------ */
/* b) crashes in the middle of bursts */

#define CRASH_CLIENTS 4
#define CRASH_BURST   400
#define CRASH_TRIALS  5
#define CRASH_WINDOW  50

typedef struct {
	GHashTable *acked; /* (owned) text -> id, the acknowledgements seen */
	GHashTable *seen;  /* (owned) id -> text, every message seen on any client */
	guint n_acked;
	guint n_frames;
} CrashTrial;

static void
crash_trial_clear(CrashTrial *ct)
{
	g_clear_pointer(&ct->acked, g_hash_table_unref);
	g_clear_pointer(&ct->seen, g_hash_table_unref);
}

static void
crash_send(CodechatTestWs *ws, guint trial, guint client, guint k)
{
	g_autofree gchar *text = g_strdup_printf("t%u-c%u-%u", trial, client, k);

	/* the ref is the text without its "t" */
	send_say(ws, ROOM, text, text + 1);
}

static void
crash_handle(CrashTrial *ct, guint trial, guint client, JsonObject *obj)
{
	const gchar *type = type_of(obj);
	const gchar *text;
	const gchar *known;
	gint64 id;

	ct->n_frames++;
	if (g_strcmp0(type, "presence") == 0)
		return;
	if (g_strcmp0(type, "message") != 0) {
		g_autofree gchar *frame = to_string(obj);
		codechat_test_note("client %u got %.500s", client, frame);
	}
	g_assert_cmpstr(type, ==, "message");
	g_assert_cmpstr(codechat_test_json_string(obj, "room"), ==, ROOM);
	text = codechat_test_json_string(obj, "text");
	id = codechat_test_json_int(obj, "id");
	g_assert_nonnull(text);
	/* every client sees the same message under the same id */
	known = g_hash_table_lookup(ct->seen, GINT_TO_POINTER((gint)id));
	if (known != NULL)
		g_assert_cmpstr(known, ==, text);
	else
		g_hash_table_insert(ct->seen, GINT_TO_POINTER((gint)id), g_strdup(text));

	if (json_object_has_member(obj, "ref")) {
		g_autofree gchar *prefix = g_strdup_printf("t%u-c%u-", trial, client);
		/* the sender's copy, acknowledging its own message */
		g_assert_true(g_str_has_prefix(text, prefix));
		g_assert_cmpstr(codechat_test_json_string(obj, "ref"), ==, text + 1);
		g_assert_false(g_hash_table_contains(ct->acked, text));
		g_hash_table_insert(ct->acked, g_strdup(text), GINT_TO_POINTER((gint)id));
		ct->n_acked++;
	}
}

/* checks the room's history after a crash; @prev is the history as the
 * last check found it (texts by id), and is updated */
static void
crash_verify(CodechatTestWs *checker, GPtrArray *prev, CrashTrial *ct, guint trial)
{
	g_autoptr(GPtrArray) all = read_room(checker, ROOM);
	g_autoptr(GHashTable) by_text = g_hash_table_new(g_str_hash, g_str_equal);
	GHashTableIter iter;
	gpointer key, value;
	/* per client of the trial just crashed: how many of its messages are
	 * in the history, which must be its first ones, in order */
	guint count[CRASH_CLIENTS] = {0};
	gint64 last_id[CRASH_CLIENTS] = {0};

	codechat_test_note("check before trial %u: %u messages in the history, %u before",
			   trial,
			   all->len,
			   prev->len);
	/* contiguous ids from 1: transactions commit in order, ids are given
	 * in order and after a crash the next id follows the last stored */
	for (guint i = 0; i < all->len; i++) {
		JsonObject *msg = g_ptr_array_index(all, i);
		const gchar *text = codechat_test_json_string(msg, "text");
		gint64 id = codechat_test_json_int(msg, "id");

		g_assert_cmpint(id, ==, (gint64)i + 1);
		/* each text once: nothing was stored twice */
		if (g_hash_table_contains(by_text, text))
			codechat_test_note("\"%s\" is in the history twice", text);
		g_assert_false(g_hash_table_contains(by_text, text));
		g_hash_table_insert(by_text, (gpointer)text, GINT_TO_POINTER((gint)id));
		/* what an earlier check found is still there, unchanged */
		if (i < prev->len)
			g_assert_cmpstr(text, ==, g_ptr_array_index(prev, i));
		if (ct->acked != NULL) {
			guint t, c, k;
			if (sscanf(text, "t%u-c%u-%u", &t, &c, &k) == 3 && t == trial - 1) {
				g_assert_cmpuint(c, <, CRASH_CLIENTS);
				/* a client's messages, oldest first, with none missing */
				g_assert_cmpuint(k, ==, count[c]);
				g_assert_cmpint(id, >, last_id[c]);
				count[c]++;
				last_id[c] = id;
			}
		}
	}
	g_assert_cmpuint(all->len, >=, prev->len);

	if (ct->acked != NULL) {
		/* every acknowledged message, under the id it was acknowledged with */
		g_hash_table_iter_init(&iter, ct->acked);
		while (g_hash_table_iter_next(&iter, &key, &value)) {
			gpointer found = NULL;
			if (!g_hash_table_lookup_extended(by_text, key, NULL, &found))
				codechat_test_note("acknowledged \"%s\" (id %d) was lost",
						   (const gchar *)key,
						   GPOINTER_TO_INT(value));
			g_assert_true(g_hash_table_contains(by_text, key));
			g_assert_cmpint(GPOINTER_TO_INT(found), ==, GPOINTER_TO_INT(value));
		}
		/* every message any client saw (it was broadcast: committed) */
		g_hash_table_iter_init(&iter, ct->seen);
		while (g_hash_table_iter_next(&iter, &key, &value)) {
			gint id = GPOINTER_TO_INT(key);
			if ((guint)id > all->len)
				codechat_test_note("message %d \"%s\" was seen, then lost",
						   id,
						   (const gchar *)value);
			g_assert_cmpint(id, <=, (gint)all->len);
			g_assert_cmpstr(
			    codechat_test_json_string(g_ptr_array_index(all, id - 1), "text"),
			    ==,
			    value);
		}
	}

	g_ptr_array_set_size(prev, 0);
	for (guint i = 0; i < all->len; i++)
		g_ptr_array_add(
		    prev,
		    g_strdup(codechat_test_json_string(g_ptr_array_index(all, i), "text")));
}

static void
test_crash(Fixture *fx, gconstpointer user_data)
{
	/* when to kill: after this many acknowledgements of the trial's
	 * CRASH_CLIENTS * CRASH_BURST */
	const guint kill_after[CRASH_TRIALS] = {1, 150, 500, 900, 1400};
	g_autoptr(GPtrArray) prev = g_ptr_array_new_with_free_func(g_free);
	g_autofree gchar *epoch = NULL;
	CrashTrial ct = {0};

	for (guint trial = 0; trial <= CRASH_TRIALS; trial++) {
		g_autoptr(JsonObject) welcome = NULL;
		CodechatTestWs *checker;
		CodechatTestWs *ws[CRASH_CLIENTS];
		guint next_k[CRASH_CLIENTS];
		gint64 deadline;
		gboolean killed = FALSE;
		guint acked_at_kill = 0;

		fx_start(fx);
		checker = fx_client_welcome(fx, "checker", &welcome);
		if (epoch == NULL)
			epoch = g_strdup(codechat_test_json_string(welcome, "epoch"));
		/* the store is the same one: not made anew by the crash */
		g_assert_cmpstr(codechat_test_json_string(welcome, "epoch"), ==, epoch);
		crash_verify(checker, prev, &ct, trial);
		crash_trial_clear(&ct);
		if (trial == CRASH_TRIALS)
			break;

		ct.acked = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
		ct.seen = g_hash_table_new_full(g_direct_hash, g_direct_equal, NULL, g_free);
		ct.n_acked = 0;
		ct.n_frames = 0;
		for (guint c = 0; c < CRASH_CLIENTS; c++) {
			g_autofree gchar *nick = g_strdup_printf("c%u", c);
			g_autoptr(JsonObject) joined = NULL;
			ws[c] = fx_client(fx, nick);
			joined = join_full(ws[c], ROOM, -1);
			/* ids go on after the last stored one */
			g_assert_cmpint(codechat_test_json_int(joined, "last_id"), ==, prev->len);
		}
		/* each client keeps CRASH_WINDOW says in flight, so that the
		 * kill always finds transactions under way */
		for (guint c = 0; c < CRASH_CLIENTS; c++) {
			next_k[c] = 0;
			while (next_k[c] < CRASH_WINDOW)
				crash_send(ws[c], trial, c, next_k[c]++);
		}

		deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;
		for (;;) {
			gboolean progress = FALSE;
			gboolean open = FALSE;

			for (guint c = 0; c < CRASH_CLIENTS; c++) {
				JsonObject *obj;
				while ((obj = codechat_test_ws_recv(ws[c], 0)) != NULL) {
					guint acked_before = ct.n_acked;

					crash_handle(&ct, trial, c, obj);
					json_object_unref(obj);
					progress = TRUE;
					if (killed || ct.n_acked == acked_before)
						continue;
					if (ct.n_acked >= kill_after[trial]) {
						/* at once, with the others in flight */
						acked_at_kill = ct.n_acked;
						fx_kill(fx);
						killed = TRUE;
					} else if (next_k[c] < CRASH_BURST) {
						crash_send(ws[c], trial, c, next_k[c]++);
					}
				}
				open = open || codechat_test_ws_is_open(ws[c]);
			}
			/* after the kill, read what the daemon sent before it died */
			if (killed && !open && !progress)
				break;
			if (g_get_monotonic_time() > deadline) {
				codechat_test_note("trial %u: %u acknowledgements, %u frames, "
						   "killed: %d; timed out",
						   trial,
						   ct.n_acked,
						   ct.n_frames,
						   killed);
				g_assert_not_reached();
			}
			if (!progress) {
				gboolean never = FALSE;
				codechat_test_pump_flag(&never, 2);
			}
		}
		codechat_test_note("trial %u: killed at %u acknowledgements of %u; %u acknowledged "
				   "and %u messages seen in all",
				   trial,
				   acked_at_kill,
				   CRASH_CLIENTS * CRASH_BURST,
				   ct.n_acked,
				   g_hash_table_size(ct.seen));
		fx_close_clients(fx);
	}
	crash_trial_clear(&ct);
	fx_stop(fx);
}

/* ------------------------------------------------------------------ */
/* c) resuming */

typedef enum {
	BOUNCE_NONE,	/* the daemon keeps running */
	BOUNCE_RESTART, /* SIGTERM, then a new daemon on the same data dir */
	BOUNCE_KILL,	/* SIGKILL, then a new daemon on the same data dir */
} Bounce;

static const Bounce bounce_none = BOUNCE_NONE;
static const Bounce bounce_restart = BOUNCE_RESTART;
static const Bounce bounce_kill = BOUNCE_KILL;

/* bounces the daemon as @user_data says; returns whether it did */
static gboolean
bounce(Fixture *fx, gconstpointer user_data)
{
	switch (*(const Bounce *)user_data) {
	case BOUNCE_NONE:
		return FALSE;
	case BOUNCE_RESTART:
		fx_stop(fx);
		break;
	case BOUNCE_KILL:
		fx_kill_and_close(fx);
		break;
	default:
		g_assert_not_reached();
	}
	fx_start(fx);
	return TRUE;
}

static void
test_resume_since(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) joined = NULL;
	g_autofree gchar *epoch = NULL;
	CodechatTestWs *alice;
	CodechatTestWs *bob;

	fx_start(fx);
	alice = fx_client(fx, "alice");
	bob = fx_client_welcome(fx, "bob", &welcome);
	epoch = g_strdup(codechat_test_json_string(welcome, "epoch"));
	join(alice, ROOM);
	join(bob, ROOM);
	fill_room(alice, ROOM, "m", 10, 1);
	expect_messages(bob, ROOM, "m", 1, 10);
	barrier(bob);
	/* bob goes away having seen 10; 50 more come */
	fx_drop(fx, bob);
	fill_room(alice, ROOM, "m", 50, 11);

	if (bounce(fx, user_data)) {
		alice = fx_client(fx, "alice");
		join(alice, ROOM);
	}
	bob = fx_client(fx, "bob");
	joined = join_full(bob, ROOM, 10);
	g_assert_cmpint(codechat_test_json_int(joined, "last_id"), ==, 60);
	g_assert_cmpstr(codechat_test_json_string(joined, "epoch"), ==, epoch);
	g_assert_false(json_object_has_member(joined, "truncated"));
	/* exactly those, in order, then live ones */
	expect_messages(bob, ROOM, "m", 11, 60);
	barrier(bob);
	g_assert_cmpint(say(alice, ROOM, "m61"), ==, 61);
	expect_messages(bob, ROOM, "m", 61, 61);
	barrier(bob);
}

static void
test_resume_truncated(Fixture *fx, gconstpointer user_data)
{
	const gint64 missed = 620;
	const gint64 last = 10 + missed;
	g_autoptr(JsonObject) joined = NULL;
	g_autoptr(GHashTable) got = g_hash_table_new(g_direct_hash, g_direct_equal);
	CodechatTestWs *alice;
	CodechatTestWs *bob;
	gint64 first_replayed = last - CODECHAT_MAX_PAGE + 1;
	gint64 before = first_replayed;
	gboolean more = TRUE;
	guint pages = 0;

	fx_start(fx);
	alice = fx_client(fx, "alice");
	bob = fx_client(fx, "bob");
	join(alice, ROOM);
	join(bob, ROOM);
	fill_room(alice, ROOM, "m", 10, 1);
	expect_messages(bob, ROOM, "m", 1, 10);
	fx_drop(fx, bob);
	fill_room(alice, ROOM, "m", (guint)missed, 11);

	bounce(fx, user_data);
	bob = fx_client(fx, "bob");
	joined = join_full(bob, ROOM, 10);
	g_assert_cmpint(codechat_test_json_int(joined, "last_id"), ==, last);
	g_assert_true(get_bool(joined, "truncated"));
	/* the newest page of what was missed */
	expect_messages(bob, ROOM, "m", first_replayed, last);
	barrier(bob);

	/* and history before it reaches the rest, page by page */
	while (more && before > 11) {
		g_autofree gchar *args = g_strdup_printf(
		    "\"room\":\"" ROOM "\",\"before\":%" G_GINT64_FORMAT ",\"limit\":50",
		    before);
		g_autoptr(JsonObject) hist = history(bob, args);
		JsonArray *msgs = get_array(hist, "messages");
		guint n = json_array_get_length(msgs);

		g_assert_cmpuint(n, >, 0);
		for (guint i = 0; i < n; i++) {
			JsonObject *msg = json_array_get_object_element(msgs, i);
			gint64 id = codechat_test_json_int(msg, "id");
			g_autofree gchar *text = g_strdup_printf("m%" G_GINT64_FORMAT, id);
			/* oldest first, ending just before the bound */
			g_assert_cmpint(id, ==, before - n + i);
			g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, text);
			g_hash_table_add(got, GINT_TO_POINTER((gint)id));
		}
		more = get_bool(hist, "more");
		before -= n;
		pages++;
	}
	codechat_test_note("paged back in %u pages", pages);
	for (gint64 id = 11; id < first_replayed; id++)
		g_assert_true(g_hash_table_contains(got, GINT_TO_POINTER((gint)id)));
}

#define RACE_JOINERS 6

static void
test_resume_race(Fixture *fx, gconstpointer user_data)
{
	/* clients resume while alice's burst is being committed, at several
	 * points of it: each gets every message after since exactly once, in
	 * order, the replay and the live messages without gap or duplicate */
	const gint64 total = 650;
	CodechatTestWs *alice;
	CodechatTestWs *joiners[RACE_JOINERS];
	gint64 expected[RACE_JOINERS] = {0};
	gint64 since[RACE_JOINERS] = {0};
	gboolean joined[RACE_JOINERS] = {FALSE};
	guint n_sent = 0;
	gint64 acked = 50;
	gint64 deadline = g_get_monotonic_time() + 30 * G_USEC_PER_SEC;

	fx_start(fx);
	alice = fx_client(fx, "alice");
	for (guint j = 0; j < RACE_JOINERS; j++) {
		g_autofree gchar *nick = g_strdup_printf("bob%u", j);
		joiners[j] = fx_client(fx, nick);
	}
	join(alice, ROOM);
	fill_room(alice, ROOM, "m", 50, 1);
	for (gint64 id = 51; id <= total; id++) {
		g_autofree gchar *text = g_strdup_printf("m%" G_GINT64_FORMAT, id);
		send_say(alice, ROOM, text, "r");
	}
	for (;;) {
		gboolean progress = FALSE;
		gboolean finished = acked == total;
		JsonObject *obj;

		g_assert_cmpint(g_get_monotonic_time(), <, deadline);
		while ((obj = codechat_test_ws_recv(alice, 0)) != NULL) {
			if (g_strcmp0(type_of(obj), "message") == 0)
				g_assert_cmpint(codechat_test_json_int(obj, "id"), ==, ++acked);
			json_object_unref(obj);
			progress = TRUE;
			/* the next one joins after every 50 acknowledgements */
			if (n_sent < RACE_JOINERS && acked >= 100 + 50 * (gint64)n_sent) {
				/* resuming from a little before what alice has seen */
				since[n_sent] = acked - 20;
				expected[n_sent] = since[n_sent] + 1;
				codechat_test_ws_sendf(joiners[n_sent],
						       "{\"type\":\"join\",\"room\":\"" ROOM
						       "\",\"since\":%" G_GINT64_FORMAT "}",
						       since[n_sent]);
				n_sent++;
				/* one at a time, with the daemon running in between */
				break;
			}
		}
		for (guint j = 0; j < n_sent; j++) {
			while ((obj = recv_skip_presence(joiners[j], 0)) != NULL) {
				progress = TRUE;
				if (!joined[j]) {
					gint64 last_id;
					g_assert_cmpstr(type_of(obj), ==, "joined");
					last_id = codechat_test_json_int(obj, "last_id");
					codechat_test_note("bob%u resumed from %" G_GINT64_FORMAT
							   ", last_id %" G_GINT64_FORMAT,
							   j,
							   since[j],
							   last_id);
					g_assert_cmpint(last_id, >=, since[j] + 20);
					/* more than a page missed: the newest page */
					if (json_object_has_member(obj, "truncated")) {
						g_assert_true(get_bool(obj, "truncated"));
						g_assert_cmpint(last_id - since[j],
								>,
								CODECHAT_MAX_PAGE);
						expected[j] = last_id - CODECHAT_MAX_PAGE + 1;
					} else {
						g_assert_cmpint(last_id - since[j],
								<=,
								CODECHAT_MAX_PAGE);
					}
					joined[j] = TRUE;
				} else {
					gint64 id = codechat_test_json_int(obj, "id");
					g_assert_cmpstr(type_of(obj), ==, "message");
					if (id != expected[j])
						codechat_test_note("bob%u got id %" G_GINT64_FORMAT
								   ", expected %" G_GINT64_FORMAT,
								   j,
								   id,
								   expected[j]);
					g_assert_cmpint(id, ==, expected[j]);
					expected[j]++;
				}
				json_object_unref(obj);
			}
			finished = finished && expected[j] > total;
		}
		if (finished && n_sent == RACE_JOINERS)
			break;
		if (!progress) {
			gboolean never = FALSE;
			codechat_test_pump_flag(&never, 2);
		}
	}
	/* nothing more, but the presence of joiners that came late */
	for (guint j = 0; j < RACE_JOINERS; j++) {
		g_autoptr(JsonObject) pong = NULL;
		codechat_test_ws_send_ping(joiners[j], "barrier");
		pong = expect_skip_presence(joiners[j], "pong");
		assert_ref(pong, "barrier");
	}
}

/* ------------------------------------------------------------------ */
/* d) direct messages */

/* a `history` with @with must hold the direct messages first..last of
 * the conversation, whose texts are given by @texts (index id - 1) */
static void
assert_dm_page(CodechatTestWs *ws,
	       const gchar *with,
	       const gchar *extra,
	       const gchar *const *texts,
	       gint64 first,
	       gint64 last,
	       gboolean more)
{
	g_autofree gchar *args = g_strdup_printf("\"with\":\"%s\"%s", with, extra);
	g_autoptr(JsonObject) hist = history(ws, args);
	JsonArray *msgs = get_array(hist, "messages");
	guint n = last >= first ? (guint)(last - first + 1) : 0;

	codechat_test_note("history %s", args);
	g_assert_null(codechat_test_json_string(hist, "room"));
	g_assert_cmpuint(json_array_get_length(msgs), ==, n);
	for (guint i = 0; i < n; i++) {
		JsonObject *msg = json_array_get_object_element(msgs, i);
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, first + i);
		g_assert_null(codechat_test_json_string(msg, "room"));
		g_assert_nonnull(codechat_test_json_string(msg, "to"));
		g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, texts[first + i - 1]);
	}
	g_assert_cmpint(get_bool(hist, "more"), ==, more);
}

static void
assert_no_dm_rooms(CodechatTestWs *ws)
{
	g_autoptr(JsonObject) rooms = NULL;
	JsonArray *list;

	codechat_test_ws_send_text(ws, "{\"type\":\"rooms\",\"ref\":\"rooms\"}");
	rooms = codechat_test_ws_expect(ws, "rooms");
	list = get_array(rooms, "rooms");
	for (guint i = 0; i < json_array_get_length(list); i++) {
		JsonObject *room = json_array_get_object_element(list, i);
		const gchar *name = codechat_test_json_string(room, "name");
		g_assert_nonnull(name);
		g_assert_null(strchr(name, ':'));
	}
}

static void
test_direct(Fixture *fx, gconstpointer user_data)
{
	const gchar *const ab[] = {"a1", "a2", "a3", "a4", "a5", "b1", "b2", "a6"};
	const gchar *const ac[] = {"c1", "a-c"};
	CodechatTestWs *alice;
	CodechatTestWs *bob;
	CodechatTestWs *carol;

	fx_start(fx);
	alice = fx_client(fx, "alice");
	bob = fx_client(fx, "bob");
	carol = fx_client(fx, "carol");

	/* room ids do not move conversation ids, nor the other way round */
	join(alice, "r");
	fill_room(alice, "r", "m", 2, 1);
	for (guint i = 0; i < 5; i++) {
		g_autoptr(JsonObject) copy = NULL;
		g_assert_cmpint(dm(alice, "bob", ab[i], "d"), ==, i + 1);
		copy = codechat_test_ws_expect(bob, "message");
		g_assert_cmpint(codechat_test_json_int(copy, "id"), ==, i + 1);
		g_assert_cmpstr(codechat_test_json_string(copy, "from"), ==, "alice");
		assert_ref(copy, NULL);
	}
	for (guint i = 5; i < 7; i++) {
		g_autoptr(JsonObject) copy = NULL;
		g_assert_cmpint(dm(bob, "alice", ab[i], "d"), ==, i + 1);
		copy = codechat_test_ws_expect(alice, "message");
		g_assert_cmpint(codechat_test_json_int(copy, "id"), ==, i + 1);
	}
	g_assert_cmpint(say(alice, "r", "m3"), ==, 3);
	/* every copy was sent before the acknowledgements: carol got none */
	barrier(carol);

	/* carol can read neither side of it: her conversations are her own */
	assert_dm_page(carol, "alice", "", ab, 1, 0, FALSE);
	assert_dm_page(carol, "bob", "", ab, 1, 0, FALSE);
	assert_dm_page(carol, "alice", ",\"after\":0", ab, 1, 0, FALSE);
	assert_dm_page(carol, "bob", ",\"before\":8", ab, 1, 0, FALSE);
	/* nor as a room */
	codechat_test_ws_send_text(
	    carol,
	    "{\"type\":\"history\",\"room\":\"dm:alice:bob\",\"ref\":\"x\"}");
	expect_error(carol, "bad-room", "x");
	codechat_test_ws_send_text(carol,
				   "{\"type\":\"join\",\"room\":\"dm:alice:bob\",\"ref\":\"y\"}");
	expect_error(carol, "bad-room", "y");
	assert_no_dm_rooms(carol);

	/* her own conversation with alice has its own ids */
	g_assert_cmpint(dm(carol, "alice", ac[0], "c"), ==, 1);
	{
		g_autoptr(JsonObject) copy = codechat_test_ws_expect(alice, "message");
		g_assert_cmpstr(codechat_test_json_string(copy, "from"), ==, "carol");
	}
	barrier(bob);

	/* paging a conversation, from both ends and both sides */
	assert_dm_page(alice, "bob", "", ab, 1, 7, FALSE);
	assert_dm_page(alice, "bob", ",\"limit\":3", ab, 5, 7, TRUE);
	assert_dm_page(alice, "bob", ",\"before\":5,\"limit\":3", ab, 2, 4, TRUE);
	assert_dm_page(alice, "bob", ",\"before\":2,\"limit\":3", ab, 1, 1, FALSE);
	assert_dm_page(alice, "bob", ",\"after\":0,\"limit\":3", ab, 1, 3, TRUE);
	assert_dm_page(alice, "bob", ",\"after\":4,\"limit\":3", ab, 5, 7, FALSE);
	assert_dm_page(alice, "bob", ",\"after\":7", ab, 1, 0, FALSE);
	assert_dm_page(bob, "alice", "", ab, 1, 7, FALSE);
	assert_dm_page(bob, "ALICE", ",\"limit\":2", ab, 6, 7, TRUE);

	/* never seen: unknown */
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"to\":\"nobody\",\"text\":\"?\",\"ref\":\"u\"}");
	expect_error(alice, "unknown-nick", "u");
	codechat_test_ws_send_text(alice,
				   "{\"type\":\"history\",\"with\":\"nobody\",\"ref\":\"v\"}");
	expect_error(alice, "unknown-nick", "v");

	/* dave only says hello; then an acknowledged message, which is
	 * committed after his nick was */
	fx_drop(fx, fx_client(fx, "dave"));
	g_assert_cmpint(dm(alice, "carol", ac[1], "d"), ==, 2);

	if (!bounce(fx, user_data))
		return;

	/* known nicks are remembered: offline now, and still reachable */
	alice = fx_client(fx, "alice");
	g_assert_cmpint(dm(alice, "bob", ab[7], "d"), ==, 8);
	g_assert_cmpint(dm(alice, "dave", "hi dave", "d"), ==, 1);
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"to\":\"nobody\",\"text\":\"?\",\"ref\":\"u\"}");
	expect_error(alice, "unknown-nick", "u");
	assert_dm_page(alice, "bob", "", ab, 1, 8, FALSE);
	carol = fx_client(fx, "carol");
	assert_dm_page(carol, "alice", "", ac, 1, 2, FALSE);
	assert_dm_page(carol, "bob", "", ab, 1, 0, FALSE);
	assert_dm_page(carol, "dave", "", ab, 1, 0, FALSE);
	assert_no_dm_rooms(carol);
	barrier(carol);
}

/* ------------------------------------------------------------------ */
/* e) start-up errors */

typedef struct {
	gboolean done;
	gchar *out; /* (owned) */
	gchar *err; /* (owned) */
	GError *error;
} Communicate;

static void
communicate_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	Communicate *cm = user_data;

	g_subprocess_communicate_utf8_finish(G_SUBPROCESS(source),
					     res,
					     &cm->out,
					     &cm->err,
					     &cm->error);
	cm->done = TRUE;
}

static GSubprocessLauncher *
daemon_launcher(Fixture *fx, GSubprocessFlags flags)
{
	GSubprocessLauncher *launcher = g_subprocess_launcher_new(flags);
	g_auto(GStrv) env = g_get_environ();
	g_autofree gchar *config = g_build_filename(fx->dir, "config", NULL);

	g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
	/* no config file or CODECHATD_* variable of the machine's */
	for (guint i = 0; env[i] != NULL; i++) {
		if (g_str_has_prefix(env[i], "CODECHATD_")) {
			g_autofree gchar *name = g_strndup(env[i], strcspn(env[i], "="));
			g_subprocess_launcher_unsetenv(launcher, name);
		}
	}
	g_subprocess_launcher_setenv(launcher, "XDG_CONFIG_HOME", config, TRUE);
	return launcher;
}

/* runs codechatd with @args, which must not start: returns its exit
 * status (-1 when a signal ended it) and what it wrote */
static gint
run_daemon_failing(Fixture *fx,
		   const gchar *const *args,
		   const gchar *env_name,
		   const gchar *env_value,
		   gchar **out,
		   gchar **err)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    daemon_launcher(fx, G_SUBPROCESS_FLAGS_STDOUT_PIPE | G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_autoptr(GPtrArray) argv = g_ptr_array_new();
	g_autoptr(GSubprocess) proc = NULL;
	g_autoptr(GError) error = NULL;
	Communicate cm = {0};
	pid_t pid;

	if (env_name != NULL)
		g_subprocess_launcher_setenv(launcher, env_name, env_value, TRUE);
	g_ptr_array_add(argv, (gpointer)codechat_test_daemon_path());
	g_ptr_array_add(argv, (gpointer) "--listen");
	g_ptr_array_add(argv, (gpointer) "127.0.0.1:0");
	for (guint i = 0; args[i] != NULL; i++)
		g_ptr_array_add(argv, (gpointer)args[i]);
	g_ptr_array_add(argv, NULL);
	proc = g_subprocess_launcher_spawnv(launcher, (const gchar *const *)argv->pdata, &error);
	g_assert_no_error(error);
	pid = pids_track_id(g_subprocess_get_identifier(proc));
	g_subprocess_communicate_utf8_async(proc, NULL, NULL, communicate_cb, &cm);
	if (!codechat_test_pump_flag(&cm.done, 10000)) {
		codechat_test_note("codechatd did not exit: it must refuse to start");
		g_subprocess_force_exit(proc);
		codechat_test_pump_flag(&cm.done, 10000);
	}
	pids_untrack(pid);
	g_assert_true(cm.done);
	g_assert_no_error(cm.error);
	codechat_test_note("codechatd wrote on stderr: %s", cm.err);
	*out = cm.out;
	*err = cm.err;
	if (!g_subprocess_get_if_exited(proc)) {
		codechat_test_note("codechatd died of signal %d", g_subprocess_get_term_sig(proc));
		return -1;
	}
	return g_subprocess_get_exit_status(proc);
}

/* codechatd with @args must exit 1, naming @path in a short message on
 * stderr, without touching @damaged (if not %NULL) */
static void
assert_start_fails(Fixture *fx,
		   const gchar *const *args,
		   const gchar *path,
		   const gchar *damaged,
		   const gchar *env_name,
		   const gchar *env_value)
{
	g_autofree gchar *out = NULL;
	g_autofree gchar *err = NULL;
	g_autoptr(GBytes) before = NULL;
	g_auto(GStrv) lines = NULL;
	guint n_lines = 0;
	gboolean named = FALSE;

	if (damaged != NULL)
		before = read_file(damaged);
	g_assert_cmpint(run_daemon_failing(fx, args, env_name, env_value, &out, &err), ==, 1);
	g_assert_null(strstr(out, "listening"));
	lines = g_strsplit(err, "\n", -1);
	for (guint i = 0; lines[i] != NULL; i++) {
		if (lines[i][0] == '\0')
			continue;
		n_lines++;
		if (strstr(lines[i], path) != NULL)
			named = TRUE;
	}
	if (!named)
		codechat_test_note("stderr does not name %s", path);
	g_assert_true(named);
	/* one line, and perhaps a hint how to go on */
	g_assert_cmpuint(n_lines, <=, 2);
	if (before != NULL) {
		g_autoptr(GBytes) after = read_file(damaged);
		g_assert_true(g_bytes_equal(before, after));
	}
}

static void
test_startup_garbage(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path = db_path(fx->dir);
	const gchar *const args[] = {"--data-dir", fx->dir, NULL};
	guint8 junk[4096];

	memset(junk, 0xaa, sizeof(junk));
	write_file(path, junk, sizeof(junk));
	assert_start_fails(fx, args, path, path, NULL, NULL);
}

/* a real database of codechatd's, with some history, to damage */
static gchar *
make_db(Fixture *fx)
{
	CodechatTestWs *alice;

	fx_start(fx);
	alice = fx_client(fx, "alice");
	join(alice, ROOM);
	fill_room(alice, ROOM, "m", 100, 1);
	fx_stop(fx);
	return db_path(fx->dir);
}

static void
test_startup_header(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path = make_db(fx);
	g_autoptr(GBytes) good = read_file(path);
	g_autofree guint8 *bad = g_memdup2(g_bytes_get_data(good, NULL), g_bytes_get_size(good));
	const gchar *const args[] = {"--data-dir", fx->dir, NULL};

	g_assert_cmpuint(g_bytes_get_size(good), >, 100);
	memset(bad, 0, 100);
	write_file(path, bad, g_bytes_get_size(good));
	assert_start_fails(fx, args, path, path, NULL, NULL);
}

static void
test_startup_truncated(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path = make_db(fx);
	g_autoptr(GBytes) good = read_file(path);
	const gchar *const args[] = {"--data-dir", fx->dir, NULL};

	write_file(path, g_bytes_get_data(good, NULL), 50);
	assert_start_fails(fx, args, path, path, NULL, NULL);
}

static void
test_startup_db_is_dir(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path = db_path(fx->dir);
	const gchar *const args[] = {"--data-dir", fx->dir, NULL};

	g_assert_cmpint(g_mkdir(path, 0700), ==, 0);
	assert_start_fails(fx, args, path, NULL, NULL, NULL);
}

static void
test_startup_parent_is_file(Fixture *fx, gconstpointer user_data)
{
	/* nothing can be made under a regular file, also as root */
	g_autofree gchar *file = g_build_filename(fx->dir, "file", NULL);
	g_autofree gchar *dir = g_build_filename(file, "data", NULL);
	const gchar *const args[] = {"--data-dir", dir, NULL};

	write_file(file, "x", 1);
	assert_start_fails(fx, args, dir, file, NULL, NULL);
	/* the same through the environment */
	{
		const gchar *const none[] = {NULL};
		assert_start_fails(fx, none, dir, file, "CODECHATD_DATA_DIR", dir);
	}
}

static void
test_startup_read_only(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *path = NULL;
	const gchar *const args[] = {"--data-dir", fx->dir, NULL};

	if (geteuid() == 0) {
		/* root writes whatever the mode bits say; so the daemons this
		 * case starts get no capability to override them (the case
		 * runs in a process of its own, see run_case()) */
		const int caps[] = {CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER};
		for (guint i = 0; i < G_N_ELEMENTS(caps); i++) {
			if (prctl(PR_CAPBSET_DROP, caps[i], 0, 0, 0) != 0) {
				g_test_skip("runs as root and cannot drop CAP_DAC_OVERRIDE: mode "
					    "bits cannot make the database read-only");
				return;
			}
		}
	}
	path = make_db(fx);
	/* the database file, then the data dir it is in */
	g_assert_cmpint(g_chmod(path, 0400), ==, 0);
	assert_start_fails(fx, args, path, path, NULL, NULL);
	g_assert_cmpint(g_chmod(path, 0600), ==, 0);
	g_assert_cmpint(g_chmod(fx->dir, 0500), ==, 0);
	assert_start_fails(fx, args, fx->dir, path, NULL, NULL);
	g_assert_cmpint(g_chmod(fx->dir, 0700), ==, 0);
	/* and with the rights back, it starts again with its history */
	fx_start(fx);
	{
		g_autoptr(GPtrArray) all = read_room(fx_client(fx, "alice"), ROOM);
		g_assert_cmpuint(all->len, ==, 100);
	}
}

static void
test_startup_bad_sync(Fixture *fx, gconstpointer user_data)
{
	const gchar *const args[] = {"--data-dir", fx->dir, "--sync", "sometimes", NULL};
	const gchar *const env_args[] = {"--data-dir", fx->dir, NULL};

	/* the message names what would do */
	assert_start_fails(fx, args, "normal", NULL, NULL, NULL);
	assert_start_fails(fx, env_args, "normal", NULL, "CODECHATD_SYNC", "sometimes");
}

static void
test_startup_in_use(Fixture *fx, gconstpointer user_data)
{
	/* a second daemon on a data dir that one already serves would hand
	 * out the same ids: it must refuse to start, and the first one go on
	 * undisturbed */
	const gchar *const args[] = {"--data-dir", fx->dir, NULL};
	CodechatTestWs *alice;

	fx_start(fx);
	alice = fx_client(fx, "alice");
	join(alice, ROOM);
	g_assert_cmpint(say(alice, ROOM, "m1"), ==, 1);
	assert_start_fails(fx, args, fx->dir, NULL, NULL, NULL);
	g_assert_cmpint(say(alice, ROOM, "m2"), ==, 2);
	fx_stop(fx);
	/* and once it is gone, the data dir is free again */
	fx_start(fx);
	alice = fx_client(fx, "alice");
	join(alice, ROOM);
	g_assert_cmpint(say(alice, ROOM, "m3"), ==, 3);
}

/* a codechatd started by hand: runs until SIGTERM */
static GSubprocess *
spawn_daemon(Fixture *fx, const gchar *xdg_data_home, gchar **uri)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    daemon_launcher(fx, G_SUBPROCESS_FLAGS_STDOUT_PIPE);
	g_autoptr(GError) error = NULL;
	g_autoptr(GDataInputStream) out = NULL;
	g_autofree gchar *line = NULL;
	GSubprocess *proc;
	const gchar *p;

	g_subprocess_launcher_setenv(launcher, "XDG_DATA_HOME", xdg_data_home, TRUE);
	proc = g_subprocess_launcher_spawn(launcher,
					   &error,
					   codechat_test_daemon_path(),
					   "--listen",
					   "127.0.0.1:0",
					   NULL);
	g_assert_no_error(error);
	out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(proc));
	line = g_data_input_stream_read_line_utf8(out, NULL, NULL, &error);
	g_assert_no_error(error);
	g_assert_nonnull(line);
	p = strstr(line, "ws://");
	g_assert_nonnull(p);
	*uri = g_strdup(p);
	return proc;
}

static void
stop_daemon(GSubprocess *proc)
{
	g_autoptr(GError) error = NULL;

	g_subprocess_send_signal(proc, SIGTERM);
	g_subprocess_wait(proc, NULL, &error);
	g_assert_no_error(error);
	g_assert_true(g_subprocess_get_if_exited(proc));
	g_assert_cmpint(g_subprocess_get_exit_status(proc), ==, 0);
}

static void
test_startup_default_dir(Fixture *fx, gconstpointer user_data)
{
	/* $XDG_DATA_HOME/codechat, made with its missing parents */
	g_autofree gchar *xdg = g_build_filename(fx->dir, "home", "share", NULL);
	g_autofree gchar *dir = g_build_filename(xdg, "codechat", NULL);
	g_autofree gchar *path = db_path(dir);
	g_autofree gchar *epoch = NULL;
	GStatBuf st;

	for (guint run = 0; run < 2; run++) {
		g_autofree gchar *uri = NULL;
		g_autoptr(GSubprocess) proc = spawn_daemon(fx, xdg, &uri);
		pid_t pid = pids_track_id(g_subprocess_get_identifier(proc));
		g_autoptr(JsonObject) welcome = NULL;
		CodechatTestWs *alice = codechat_test_ws_new_client(uri, "alice", &welcome);

		join(alice, ROOM);
		g_assert_cmpint(say(alice, ROOM, "hello"), ==, run + 1);
		if (epoch == NULL)
			epoch = g_strdup(codechat_test_json_string(welcome, "epoch"));
		g_assert_cmpstr(codechat_test_json_string(welcome, "epoch"), ==, epoch);
		codechat_test_ws_free(alice);
		stop_daemon(proc);
		pids_untrack(pid);
	}
	g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
	g_assert_cmpint(g_stat(dir, &st), ==, 0);
	codechat_test_note("data dir mode %o", (guint)(st.st_mode & 07777));
	g_assert_cmpuint(st.st_mode & 0777, ==, 0700);
}

static void
test_startup_mkdir(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *dir = g_build_filename(fx->dir, "a", "b", NULL);
	const gchar *const args[] = {"--data-dir", dir, NULL};
	g_autoptr(CodechatTestDaemon) daemon = codechat_test_daemon_start(args);
	pid_t pid = pids_track_id(g_subprocess_get_identifier(daemon->proc));
	g_autofree gchar *path = db_path(dir);
	GStatBuf st;

	g_assert_true(g_file_test(path, G_FILE_TEST_IS_REGULAR));
	g_assert_cmpint(g_stat(dir, &st), ==, 0);
	g_assert_cmpuint(st.st_mode & 0777, ==, 0700);
	g_assert_cmpint(codechat_test_daemon_stop(daemon), ==, 0);
	pids_untrack(pid);
}

/* ------------------------------------------------------------------ */
/* f) a full disk */

/* like fx_start(), with @env_name set to @env_value in the daemon's
 * environment: codechat_test_daemon_start() clears every CODECHATD_*
 * variable, so this one starts it by hand */
static void
fx_start_env(Fixture *fx, const gchar *env_name, const gchar *env_value)
{
	g_autoptr(GSubprocessLauncher) launcher =
	    daemon_launcher(fx, G_SUBPROCESS_FLAGS_STDOUT_PIPE);
	g_autoptr(GDataInputStream) out = NULL;
	g_autoptr(GError) error = NULL;
	g_autoptr(GUri) guri = NULL;
	g_autofree gchar *line = NULL;
	CodechatTestDaemon *daemon;
	const gchar *p;

	g_assert_null(fx->daemon);
	g_subprocess_launcher_setenv(launcher, env_name, env_value, TRUE);
	/* leaks are checked in the daemon, as codechat_test_daemon_start()
	 * does (see meson.build) */
	if (g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS") != NULL)
		g_subprocess_launcher_setenv(launcher,
					     "ASAN_OPTIONS",
					     g_getenv("CODECHAT_TEST_CHILD_ASAN_OPTIONS"),
					     TRUE);
	/* no data_dir of its own: codechat_test_daemon_free() leaves fx->dir */
	daemon = g_new0(CodechatTestDaemon, 1);
	fx->daemon = daemon;
	daemon->proc = g_subprocess_launcher_spawn(launcher,
						   &error,
						   codechat_test_daemon_path(),
						   "--listen",
						   "127.0.0.1:0",
						   "--data-dir",
						   fx->dir,
						   "--rate-limit",
						   "0",
						   NULL);
	g_assert_no_error(error);
	fx->pid = pids_track_id(g_subprocess_get_identifier(daemon->proc));
	/* the line that says where it listens */
	out = g_data_input_stream_new(g_subprocess_get_stdout_pipe(daemon->proc));
	line = g_data_input_stream_read_line_utf8(out, NULL, NULL, &error);
	g_assert_no_error(error);
	g_assert_nonnull(line);
	p = strstr(line, "ws://");
	g_assert_nonnull(p);
	daemon->uri = g_strdup(p);
	guri = g_uri_parse(daemon->uri, G_URI_FLAGS_NONE, &error);
	g_assert_no_error(error);
	daemon->port = (guint16)g_uri_get_port(guri);
	daemon->http_base = g_strdup_printf("http://127.0.0.1:%u", daemon->port);
	g_assert_cmpuint(daemon->port, >, 0);
}

/* a database that cannot grow past this many pages (of 4 KiB) holds
 * about ten messages of FULL_TEXT_LEN bytes */
#define FULL_PAGES    "60"
#define FULL_TEXT_LEN (20 * 1024)
/* more than could ever fit in FULL_PAGES pages */
#define FULL_MAX_SAYS 60
/* how many refusals to see once the database is full */
#define FULL_REFUSALS 5

/* a text of FULL_TEXT_LEN bytes that starts with "<prefix><n>:" */
static gchar *
full_text(const gchar *prefix, guint n)
{
	GString *text = g_string_sized_new(FULL_TEXT_LEN);

	g_string_printf(text, "%s%u:", prefix, n);
	while (text->len < FULL_TEXT_LEN)
		g_string_append_c(text, (gchar)('a' + (text->len * 7 + n) % 26));
	return g_string_free(text, FALSE);
}

/* @room's entry in a `rooms` reply must have @last_id */
static void
assert_rooms_last_id(CodechatTestWs *ws, const gchar *room, gint64 last_id)
{
	g_autoptr(JsonObject) rooms = NULL;
	JsonArray *list;
	gboolean found = FALSE;

	codechat_test_ws_send_text(ws, "{\"type\":\"rooms\",\"ref\":\"rooms\"}");
	rooms = expect_skip_presence(ws, "rooms");
	assert_ref(rooms, "rooms");
	list = get_array(rooms, "rooms");
	for (guint i = 0; i < json_array_get_length(list); i++) {
		JsonObject *entry = json_array_get_object_element(list, i);
		if (g_strcmp0(codechat_test_json_string(entry, "name"), room) == 0) {
			g_assert_false(found);
			found = TRUE;
			g_assert_cmpint(codechat_test_json_int(entry, "last_id"), ==, last_id);
		}
	}
	g_assert_true(found);
}

static void
test_disk_full(Fixture *fx, gconstpointer user_data)
{
	/* the ids of the acknowledged messages, in order; their texts */
	g_autoptr(GArray) acked = g_array_new(FALSE, FALSE, sizeof(gint64));
	g_autoptr(GPtrArray) texts = g_ptr_array_new_with_free_func(g_free);
	g_autoptr(JsonObject) welcome = NULL;
	g_autofree gchar *epoch = NULL;
	CodechatTestWs *alice;
	CodechatTestWs *bob;
	guint refused = 0;
	gint64 last_acked = 0;

	fx_start_env(fx, "CODECHATD_TEST_MAX_PAGES", FULL_PAGES);
	alice = fx_client_welcome(fx, "alice", &welcome);
	epoch = g_strdup(codechat_test_json_string(welcome, "epoch"));
	bob = fx_client(fx, "bob");
	join(alice, ROOM);
	join(bob, ROOM);

	/* one at a time: acknowledgements until the database is full, then
	 * internal errors for the same refs, and never a message */
	for (guint i = 1; i <= FULL_MAX_SAYS && refused < FULL_REFUSALS; i++) {
		g_autofree gchar *text = full_text("big", i);
		g_autofree gchar *ref = g_strdup_printf("b%u", i);
		g_autoptr(JsonObject) reply = NULL;
		const gchar *type;

		send_say(alice, ROOM, text, ref);
		reply = recv_skip_presence(alice, T);
		if (reply == NULL)
			codechat_test_note("no reply to say %s", ref);
		g_assert_nonnull(reply);
		type = type_of(reply);
		assert_ref(reply, ref);
		if (g_strcmp0(type, "message") == 0) {
			g_autoptr(JsonObject) copy = NULL;
			gint64 id = codechat_test_json_int(reply, "id");

			/* once full, it stays full: nothing is freed meanwhile */
			if (refused > 0)
				codechat_test_note("say %s acknowledged with id %" G_GINT64_FORMAT
						   " after %u refusals",
						   ref,
						   id,
						   refused);
			g_assert_cmpuint(refused, ==, 0);
			g_assert_cmpstr(codechat_test_json_string(reply, "room"), ==, ROOM);
			g_assert_cmpstr(codechat_test_json_string(reply, "text"), ==, text);
			g_assert_cmpint(id, >, last_acked);
			last_acked = id;
			g_array_append_val(acked, id);
			g_ptr_array_add(texts, g_steal_pointer(&text));
			/* bob got it too, before alice's acknowledgement */
			copy = expect_skip_presence(bob, "message");
			g_assert_cmpint(codechat_test_json_int(copy, "id"), ==, id);
			g_assert_cmpstr(codechat_test_json_string(copy, "text"),
					==,
					g_ptr_array_index(texts, texts->len - 1));
			assert_ref(copy, NULL);
		} else {
			if (g_strcmp0(type, "error") != 0) {
				g_autofree gchar *frame = to_string(reply);
				codechat_test_note("say %s got %.500s", ref, frame);
			}
			g_assert_cmpstr(type, ==, "error");
			g_assert_cmpstr(codechat_test_json_string(reply, "code"), ==, "internal");
			g_assert_nonnull(codechat_test_json_string(reply, "message"));
			if (refused == 0)
				codechat_test_note("full after %u messages: say %s refused",
						   acked->len,
						   ref);
			refused++;
			/* and bob got no broadcast of it */
			barrier(bob);
		}
	}
	codechat_test_note("%u acknowledged, %u refused", acked->len, refused);
	/* it did fill up, and not at once */
	g_assert_cmpuint(refused, ==, FULL_REFUSALS);
	g_assert_cmpuint(acked->len, >=, 3);
	barrier(alice);
	barrier(bob);

	/* reads are still served: the history is exactly what was acknowledged */
	{
		g_autoptr(GPtrArray) all = read_room(bob, ROOM);
		g_autoptr(JsonObject) latest = history(alice, "\"room\":\"" ROOM "\"");
		JsonArray *msgs = get_array(latest, "messages");

		g_assert_cmpuint(all->len, ==, acked->len);
		for (guint i = 0; i < all->len; i++) {
			JsonObject *msg = g_ptr_array_index(all, i);
			g_assert_cmpint(codechat_test_json_int(msg, "id"),
					==,
					g_array_index(acked, gint64, i));
			g_assert_cmpstr(codechat_test_json_string(msg, "text"),
					==,
					g_ptr_array_index(texts, i));
			g_assert_cmpstr(codechat_test_json_string(msg, "from"), ==, "alice");
		}
		/* the latest page, without bounds, ends with the last acknowledged */
		g_assert_cmpuint(json_array_get_length(msgs), ==, acked->len);
		g_assert_false(get_bool(latest, "more"));
		g_assert_cmpint(
		    codechat_test_json_int(
			json_array_get_object_element(msgs, json_array_get_length(msgs) - 1),
			"id"),
		    ==,
		    last_acked);
	}
	/* and so are rooms, who and ping */
	assert_rooms_last_id(alice, ROOM, last_acked);
	{
		g_autoptr(JsonObject) members = NULL;
		JsonArray *list;

		codechat_test_ws_send_text(bob,
					   "{\"type\":\"who\",\"room\":\"" ROOM
					   "\",\"ref\":\"w\"}");
		members = expect_skip_presence(bob, "members");
		assert_ref(members, "w");
		g_assert_cmpstr(codechat_test_json_string(members, "room"), ==, ROOM);
		list = get_array(members, "members");
		g_assert_cmpuint(json_array_get_length(list), ==, 2);
	}
	barrier(alice);
	barrier(bob);
	/* still running: the refusals did not end it */
	g_assert_nonnull(g_subprocess_get_identifier(fx->daemon->proc));
	/* and SIGTERM ends it with 0 */
	fx_stop(fx);

	/* the disk is "freed": the same data dir without the limit */
	fx_start(fx);
	{
		g_autoptr(JsonObject) welcome2 = NULL;
		g_autoptr(JsonObject) joined = NULL;
		g_autoptr(GPtrArray) all = NULL;

		alice = fx_client_welcome(fx, "alice", &welcome2);
		g_assert_cmpstr(codechat_test_json_string(welcome2, "epoch"), ==, epoch);
		joined = join_full(alice, ROOM, -1);
		g_assert_cmpint(codechat_test_json_int(joined, "last_id"), ==, last_acked);
		/* new messages are taken again, with ids above every acknowledged one */
		for (guint i = 1; i <= FULL_REFUSALS; i++) {
			g_autofree gchar *text = full_text("after", i);
			gint64 id = say(alice, ROOM, text);

			codechat_test_note("after the restart: id %" G_GINT64_FORMAT, id);
			g_assert_cmpint(id, >, last_acked);
			last_acked = id;
			g_array_append_val(acked, id);
			g_ptr_array_add(texts, g_steal_pointer(&text));
		}
		all = read_room(alice, ROOM);
		g_assert_cmpuint(all->len, ==, acked->len);
		for (guint i = 0; i < all->len; i++) {
			JsonObject *msg = g_ptr_array_index(all, i);
			g_assert_cmpint(codechat_test_json_int(msg, "id"),
					==,
					g_array_index(acked, gint64, i));
			g_assert_cmpstr(codechat_test_json_string(msg, "text"),
					==,
					g_ptr_array_index(texts, i));
		}
		assert_rooms_last_id(alice, ROOM, last_acked);
	}
	fx_stop(fx);
}

/* ------------------------------------------------------------------ */

static void
drop_debug(const gchar *domain, GLogLevelFlags level, const gchar *message, gpointer user_data)
{
}

typedef void (*CaseFunc)(Fixture *fx, gconstpointer user_data);

typedef struct {
	CaseFunc func;
	gconstpointer data;
	guint timeout_s;
} Case;

/* every case runs in a child process of its own (this program again,
 * with -p and CODECHAT_TEST_CHILD set): a failed assertion ends that case
 * only, and the next cases still run; see test-daemon.c */
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
	gint64 start = g_get_monotonic_time();
	gboolean done = FALSE;

	if (in_child) {
		Fixture fx = {0};
		fixture_setup(&fx);
		c->func(&fx, c->data);
		fixture_teardown(&fx);
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
	if (!codechat_test_pump_flag(&done, c->timeout_s * 1000)) {
		/* SIGABRT, so that it takes its daemons along */
		g_test_message("%s timed out", g_test_get_path());
		g_subprocess_send_signal(child, SIGABRT);
		codechat_test_pump_flag(&done, 10 * 1000);
	}
	g_test_message("%s took %.1f s",
		       g_test_get_path(),
		       (gdouble)(g_get_monotonic_time() - start) / G_USEC_PER_SEC);
	if (!done || !g_subprocess_get_if_exited(child) ||
	    g_subprocess_get_exit_status(child) != 0) {
		g_test_message("%s failed in its child process: see its messages on stderr",
			       g_test_get_path());
		g_test_fail();
	}
}

static void
add(const gchar *path, CaseFunc func, gconstpointer data, guint timeout_s)
{
	g_autofree gchar *full = g_strconcat("/codechat/durability/", path, NULL);
	Case *c = g_new0(Case, 1);

	c->func = func;
	c->data = data;
	c->timeout_s = timeout_s;
	g_test_add_data_func_full(full, c, run_case, g_free);
}

int
main(int argc, char **argv)
{
	struct sigaction sa;

	self_path = argv[0];
	in_child = g_getenv("CODECHAT_TEST_CHILD") != NULL;
	g_test_init(&argc, &argv, NULL);
	if (!in_child)
		g_test_set_nonfatal_assertions();

	if (g_getenv("G_MESSAGES_DEBUG") == NULL) {
		const gchar *domains[] = {"libsoup", "GLib-GIO", "GLib", "Json"};
		for (guint i = 0; i < G_N_ELEMENTS(domains); i++)
			g_log_set_handler(domains[i], G_LOG_LEVEL_DEBUG, drop_debug, NULL);
	}

	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = abort_handler;
	sigaction(SIGABRT, &sa, NULL);
	sigaction(SIGSEGV, &sa, NULL);

	add("restart/persistence", test_restart, NULL, 60);
	add("restart/new-epoch", test_new_epoch, NULL, 60);
	add("restart/sync-normal", test_sync_normal, NULL, 60);
	add("restart/sigterm-in-flight", test_sigterm_in_flight, NULL, 60);

	add("crash/bursts", test_crash, NULL, 150);

	add("resume/since", test_resume_since, &bounce_none, 60);
	add("resume/since-restart", test_resume_since, &bounce_restart, 60);
	add("resume/since-kill", test_resume_since, &bounce_kill, 60);
	add("resume/truncated", test_resume_truncated, &bounce_none, 60);
	add("resume/truncated-kill", test_resume_truncated, &bounce_kill, 60);
	add("resume/race", test_resume_race, NULL, 60);

	add("direct/privacy", test_direct, &bounce_none, 60);
	add("direct/privacy-restart", test_direct, &bounce_restart, 60);
	add("direct/privacy-kill", test_direct, &bounce_kill, 60);

	add("startup/corrupt-garbage", test_startup_garbage, NULL, 60);
	add("startup/corrupt-header", test_startup_header, NULL, 60);
	add("startup/corrupt-truncated", test_startup_truncated, NULL, 60);
	add("startup/db-is-dir", test_startup_db_is_dir, NULL, 60);
	add("startup/parent-is-file", test_startup_parent_is_file, NULL, 60);
	add("startup/read-only", test_startup_read_only, NULL, 60);
	add("startup/bad-sync", test_startup_bad_sync, NULL, 60);
	add("startup/in-use", test_startup_in_use, NULL, 60);
	add("startup/default-dir", test_startup_default_dir, NULL, 60);
	add("startup/mkdir", test_startup_mkdir, NULL, 60);

	add("disk-full", test_disk_full, NULL, 60);

	return g_test_run();
}
