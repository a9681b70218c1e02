/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <signal.h>
#include <string.h>

#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"

/*
 * Several codechatd on one Redis (issue 9), all real processes: a
 * redis-server on a unix socket in a temporary folder and three daemons
 * started with --redis on it, driven by WebSocket clients.  Every client
 * must see every message of its rooms in the same order with the same
 * ids, whichever daemon it is connected to.
 */

#define N_DAEMONS 3

typedef struct {
	gchar *redis_dir;
	gchar *redis_url;
	CodechatTestDaemon *daemons[N_DAEMONS];
	GPtrArray *clients; /* (element-type CodechatTestWs) */
} Fixture;

static const gchar *
redis_server(void)
{
	static gchar *path;

	if (path == NULL) {
		const gchar *env = g_getenv("CODECHAT_TEST_REDIS");
		path = env != NULL && env[0] != '\0' ? g_strdup(env)
						     : g_find_program_in_path("redis-server");
	}
	return path;
}

static CodechatTestDaemon *
start_daemon(Fixture *fx)
{
	const gchar *args[] = {"--redis", fx->redis_url, "--rate-limit", "0", NULL};

	return codechat_test_daemon_start(args);
}

/* @user_data set: the daemons count as dead 500 ms after their last
 * heartbeat (every 100 ms), through codechatd's test-only variables */
static void
fixture_setup(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GError) error = NULL;

	fx->clients = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_ws_free);
	if (redis_server() == NULL) {
		g_test_skip("redis-server is not installed");
		return;
	}
	fx->redis_dir = g_dir_make_tmp("codechat-test-redis-XXXXXX", &error);
	g_assert_no_error(error);
	fx->redis_url = codechat_test_daemon_redis_start(redis_server(), fx->redis_dir);
	if (user_data != NULL) {
		g_setenv("CODECHATD_TEST_CLUSTER_TTL_MS", "500", TRUE);
		g_setenv("CODECHATD_TEST_CLUSTER_HEARTBEAT_MS", "100", TRUE);
	}
	for (guint i = 0; i < N_DAEMONS; i++)
		fx->daemons[i] = start_daemon(fx);
	g_unsetenv("CODECHATD_TEST_CLUSTER_TTL_MS");
	g_unsetenv("CODECHATD_TEST_CLUSTER_HEARTBEAT_MS");
}

static void
fixture_teardown(Fixture *fx, gconstpointer user_data)
{
	g_ptr_array_unref(fx->clients);
	for (guint i = 0; i < N_DAEMONS; i++) {
		if (fx->daemons[i] != NULL && g_subprocess_get_identifier(fx->daemons[i]->proc))
			g_assert_cmpint(codechat_test_daemon_stop(fx->daemons[i]), ==, 0);
		g_clear_pointer(&fx->daemons[i], codechat_test_daemon_free);
	}
	if (fx->redis_dir != NULL) {
		codechat_test_daemon_redis_stop(fx->redis_dir);
		codechat_test_rm_rf(fx->redis_dir);
	}
	g_free(fx->redis_dir);
	g_free(fx->redis_url);
}

static CodechatTestWs *
client(Fixture *fx, guint daemon, const gchar *nick)
{
	CodechatTestWs *ws = codechat_test_ws_new_client(fx->daemons[daemon]->uri, nick, NULL);

	g_ptr_array_add(fx->clients, ws);
	return ws;
}

/*
 * Says hello as @nick on daemon @daemon; a nick-taken is tried again for
 * a while: a session that just ended on another daemon gives its nick
 * back asynchronously, as does a daemon found dead.
 */
static CodechatTestWs *
client_retry(Fixture *fx, guint daemon, const gchar *nick)
{
	for (guint i = 0; i < 100; i++) {
		CodechatTestWs *ws = codechat_test_ws_connect_simple(fx->daemons[daemon]->uri);
		g_autoptr(JsonObject) reply = NULL;

		codechat_test_ws_sendf(ws, "{\"type\":\"hello\",\"nick\":\"%s\"}", nick);
		reply = codechat_test_ws_recv(ws, CODECHAT_TEST_TIMEOUT_MS);
		g_assert_nonnull(reply);
		if (g_strcmp0(codechat_test_json_string(reply, "type"), "welcome") == 0) {
			g_assert_cmpstr(codechat_test_json_string(reply, "nick"), ==, nick);
			g_ptr_array_add(fx->clients, ws);
			return ws;
		}
		g_assert_cmpstr(codechat_test_json_string(reply, "code"), ==, "nick-taken");
		codechat_test_ws_free(ws);
		g_usleep(50 * 1000);
	}
	g_assert_not_reached();
}

static JsonObject *
join_full(CodechatTestWs *ws, const gchar *room, gint64 since)
{
	JsonObject *joined;

	if (since >= 0)
		codechat_test_ws_sendf(
		    ws,
		    "{\"type\":\"join\",\"room\":\"%s\",\"since\":%" G_GINT64_FORMAT "}",
		    room,
		    since);
	else
		codechat_test_ws_sendf(ws, "{\"type\":\"join\",\"room\":\"%s\"}", room);
	joined = codechat_test_ws_expect(ws, "joined");
	g_assert_cmpstr(codechat_test_json_string(joined, "room"), ==, room);
	return joined;
}

/* the nicks of @obj's "members", in their order, joined by commas */
static gchar *
members_of(JsonObject *obj)
{
	JsonArray *array = json_object_get_array_member(obj, "members");
	g_autoptr(GStrvBuilder) builder = g_strv_builder_new();
	g_auto(GStrv) nicks = NULL;

	g_assert_nonnull(array);
	for (guint i = 0; i < json_array_get_length(array); i++)
		g_strv_builder_add(builder, json_array_get_string_element(array, i));
	nicks = g_strv_builder_end(builder);
	return g_strjoinv(",", nicks);
}

/* who @room, asked again for a while until it is @want: the view of
 * another daemon follows Redis' channel a moment later */
static void
assert_who(CodechatTestWs *ws, const gchar *room, const gchar *want)
{
	g_autofree gchar *got = NULL;

	for (guint i = 0; i < 100; i++) {
		g_autoptr(JsonObject) members = NULL;

		codechat_test_ws_sendf(ws, "{\"type\":\"who\",\"room\":\"%s\"}", room);
		members = codechat_test_ws_expect(ws, "members");
		g_assert_cmpstr(codechat_test_json_string(members, "room"), ==, room);
		g_free(got);
		got = members_of(members);
		if (g_strcmp0(got, want) == 0)
			break;
		g_usleep(20 * 1000);
	}
	g_assert_cmpstr(got, ==, want);
}

/* the members count of @room in the reply to rooms, -1 when not listed */
static gint64
rooms_count(CodechatTestWs *ws, const gchar *room)
{
	g_autoptr(JsonObject) rooms = NULL;
	JsonArray *list;

	codechat_test_ws_send_text(ws, "{\"type\":\"rooms\"}");
	rooms = codechat_test_ws_expect(ws, "rooms");
	list = json_object_get_array_member(rooms, "rooms");
	for (guint i = 0; i < json_array_get_length(list); i++) {
		JsonObject *obj = json_array_get_object_element(list, i);

		if (g_strcmp0(codechat_test_json_string(obj, "name"), room) == 0)
			return codechat_test_json_int(obj, "members");
	}
	return -1;
}

static void
expect_presence(CodechatTestWs *ws, const gchar *room, const gchar *nick, const gchar *event)
{
	g_autoptr(JsonObject) presence = codechat_test_ws_expect(ws, "presence");

	g_assert_cmpstr(codechat_test_json_string(presence, "room"), ==, room);
	g_assert_cmpstr(codechat_test_json_string(presence, "nick"), ==, nick);
	g_assert_cmpstr(codechat_test_json_string(presence, "event"), ==, event);
}

/* nothing came before the answer to a ping */
static void
assert_nothing_pending(CodechatTestWs *ws)
{
	codechat_test_ws_send_text(ws, "{\"type\":\"ping\"}");
	codechat_test_ws_expect_pong(ws);
}

static void
join(CodechatTestWs *ws, const gchar *room, gint64 since)
{
	g_autoptr(JsonObject) joined = NULL;

	if (since >= 0)
		codechat_test_ws_sendf(
		    ws,
		    "{\"type\":\"join\",\"room\":\"%s\",\"since\":%" G_GINT64_FORMAT "}",
		    room,
		    since);
	else
		codechat_test_ws_sendf(ws, "{\"type\":\"join\",\"room\":\"%s\"}", room);
	joined = codechat_test_ws_expect(ws, "joined");
	g_assert_cmpstr(codechat_test_json_string(joined, "room"), ==, room);
}

/* the next message frame, skipping presence events */
static JsonObject *
next_message(CodechatTestWs *ws)
{
	for (;;) {
		JsonObject *obj = codechat_test_ws_recv(ws, CODECHAT_TEST_TIMEOUT_MS);

		g_assert_nonnull(obj);
		if (g_strcmp0(codechat_test_json_string(obj, "type"), "presence") == 0) {
			json_object_unref(obj);
			continue;
		}
		g_assert_cmpstr(codechat_test_json_string(obj, "type"), ==, "message");
		return obj;
	}
}

static void
send_say(CodechatTestWs *ws, const gchar *room, const gchar *text, const gchar *ref)
{
	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"room\":\"%s\",\"text\":\"%s\",\"ref\":\"%s\"}",
			       room,
			       text,
			       ref);
}

/* the texts of a room's messages by id, as @ws receives @n of them */
static GPtrArray *
receive_texts(CodechatTestWs *ws, guint n, gint64 first_id)
{
	GPtrArray *texts = g_ptr_array_new_with_free_func(g_free);

	for (guint i = 0; i < n; i++) {
		g_autoptr(JsonObject) msg = next_message(ws);

		/* ids come in order, from first_id on, without a gap */
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, first_id + (gint64)i);
		g_ptr_array_add(texts, g_strdup(codechat_test_json_string(msg, "text")));
	}
	return texts;
}

static void
assert_same_texts(GPtrArray *a, GPtrArray *b)
{
	g_assert_cmpuint(a->len, ==, b->len);
	for (guint i = 0; i < a->len; i++)
		g_assert_cmpstr(a->pdata[i], ==, b->pdata[i]);
}

/* alice, bob and carol, each on a daemon of their own, talk in one room:
 * all three get all messages, with the same ids in the same order */
static void
test_room(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *users[N_DAEMONS];
	const gchar *nicks[N_DAEMONS] = {"alice", "bob", "carol"};
	g_autoptr(GPtrArray) first = NULL;
	const guint per_user = 20;

	if (g_test_failed() || fx->redis_url == NULL)
		return;
	for (guint i = 0; i < N_DAEMONS; i++) {
		users[i] = client(fx, i, nicks[i]);
		join(users[i], "general", -1);
	}
	/* interleaved and pipelined: the daemons race for ids */
	for (guint k = 0; k < per_user; k++) {
		for (guint i = 0; i < N_DAEMONS; i++) {
			g_autofree gchar *text = g_strdup_printf("%s-%u", nicks[i], k);
			send_say(users[i], "general", text, text);
		}
	}
	for (guint i = 0; i < N_DAEMONS; i++) {
		g_autoptr(GPtrArray) texts = receive_texts(users[i], per_user * N_DAEMONS, 1);

		/* each user's own messages in the order sent */
		for (guint k = 0, seen = 0; k < texts->len; k++) {
			g_autofree gchar *prefix = g_strdup_printf("%s-", nicks[i]);
			g_autofree gchar *want = g_strdup_printf("%s-%u", nicks[i], seen);

			if (g_str_has_prefix(texts->pdata[k], prefix)) {
				g_assert_cmpstr(texts->pdata[k], ==, want);
				seen++;
			}
		}
		if (first == NULL)
			first = g_steal_pointer(&texts);
		else
			assert_same_texts(first, texts);
	}
}

/* a direct message from a daemon to a nick on another one, and the
 * conversation's history alike on both */
static void
test_direct(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice, *bob;
	g_autoptr(JsonObject) ack = NULL;
	g_autoptr(JsonObject) got = NULL;
	g_autoptr(JsonObject) reply = NULL;
	g_autoptr(JsonObject) ack2 = NULL;
	g_autoptr(JsonObject) got2 = NULL;
	g_autoptr(JsonObject) hist_a = NULL;
	g_autoptr(JsonObject) hist_b = NULL;

	if (fx->redis_url == NULL)
		return;
	alice = client(fx, 0, "alice");
	bob = client(fx, 1, "bob");
	codechat_test_ws_send_text(alice, "{\"type\":\"say\",\"to\":\"bob\",\"text\":\"psst\"}");
	ack = next_message(alice);
	got = next_message(bob);
	g_assert_cmpint(codechat_test_json_int(ack, "id"), ==, 1);
	g_assert_cmpint(codechat_test_json_int(got, "id"), ==, 1);
	g_assert_cmpstr(codechat_test_json_string(got, "from"), ==, "alice");
	g_assert_cmpstr(codechat_test_json_string(got, "to"), ==, "bob");
	g_assert_cmpstr(codechat_test_json_string(got, "text"), ==, "psst");

	codechat_test_ws_send_text(bob, "{\"type\":\"say\",\"to\":\"alice\",\"text\":\"back\"}");
	ack2 = next_message(bob);
	got2 = next_message(alice);
	g_assert_cmpint(codechat_test_json_int(ack2, "id"), ==, 2);
	g_assert_cmpint(codechat_test_json_int(got2, "id"), ==, 2);

	/* carol, known on no daemon, is unknown on all of them */
	codechat_test_ws_send_text(alice, "{\"type\":\"say\",\"to\":\"carol\",\"text\":\"x\"}");
	reply = codechat_test_ws_expect_error(alice, "unknown-nick", NULL);

	codechat_test_ws_send_text(alice, "{\"type\":\"history\",\"with\":\"bob\"}");
	codechat_test_ws_send_text(bob, "{\"type\":\"history\",\"with\":\"alice\"}");
	hist_a = codechat_test_ws_expect(alice, "history");
	hist_b = codechat_test_ws_expect(bob, "history");
	{
		JsonArray *a = json_object_get_array_member(hist_a, "messages");
		JsonArray *b = json_object_get_array_member(hist_b, "messages");

		g_assert_cmpuint(json_array_get_length(a), ==, 2);
		g_assert_cmpuint(json_array_get_length(b), ==, 2);
		for (guint i = 0; i < 2; i++) {
			JsonObject *ma = json_array_get_object_element(a, i);
			JsonObject *mb = json_array_get_object_element(b, i);

			g_assert_cmpint(codechat_test_json_int(ma, "id"), ==, (gint64)i + 1);
			g_assert_cmpint(codechat_test_json_int(mb, "id"), ==, (gint64)i + 1);
			g_assert_cmpstr(codechat_test_json_string(ma, "text"),
					==,
					codechat_test_json_string(mb, "text"));
		}
	}
}

/* bob leaves daemon 1 after some messages and comes back on daemon 2 with
 * since: he gets exactly what he missed, then live traffic */
static void
test_move(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice, *bob;
	gint64 last_seen = 0;

	if (fx->redis_url == NULL)
		return;
	alice = client(fx, 0, "alice");
	bob = client(fx, 1, "bob");
	join(alice, "r", -1);
	join(bob, "r", -1);
	for (guint i = 0; i < 5; i++) {
		g_autofree gchar *text = g_strdup_printf("m%u", i + 1);
		g_autoptr(JsonObject) ack = NULL;
		g_autoptr(JsonObject) got = NULL;

		send_say(alice, "r", text, text);
		ack = next_message(alice);
		got = next_message(bob);
		last_seen = codechat_test_json_int(got, "id");
	}
	g_assert_cmpint(last_seen, ==, 5);
	g_ptr_array_remove(fx->clients, bob);

	/* while bob is away */
	for (guint i = 5; i < 12; i++) {
		g_autofree gchar *text = g_strdup_printf("m%u", i + 1);
		g_autoptr(JsonObject) ack = NULL;

		send_say(alice, "r", text, text);
		ack = next_message(alice);
	}

	/* daemon 1 gives bob's nick back asynchronously */
	bob = client_retry(fx, 2, "bob");
	join(bob, "r", last_seen);
	/* and one more while he is replayed */
	send_say(alice, "r", "m13", "m13");
	{
		g_autoptr(GPtrArray) texts = receive_texts(bob, 8, 6);

		for (guint i = 0; i < texts->len; i++) {
			g_autofree gchar *want = g_strdup_printf("m%u", i + 6);
			g_assert_cmpstr(texts->pdata[i], ==, want);
		}
	}
	g_assert_cmpuint(codechat_test_ws_pending(bob), ==, 0);
}

/* every daemon names the same epoch and lists the same rooms */
static void
test_epoch_rooms(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *epoch = NULL;

	if (fx->redis_url == NULL)
		return;
	{
		CodechatTestWs *alice = client(fx, 0, "alice");
		g_autoptr(JsonObject) ack = NULL;

		join(alice, "made-on-a", -1);
		send_say(alice, "made-on-a", "hi", "hi");
		ack = next_message(alice);
	}
	for (guint i = 0; i < N_DAEMONS; i++) {
		g_autofree gchar *nick = g_strdup_printf("u%u", i);
		g_autoptr(JsonObject) welcome = NULL;
		g_autoptr(JsonObject) rooms = NULL;
		CodechatTestWs *ws =
		    codechat_test_ws_new_client(fx->daemons[i]->uri, nick, &welcome);
		JsonArray *list;
		gboolean found = FALSE;

		g_ptr_array_add(fx->clients, ws);
		if (epoch == NULL)
			epoch = g_strdup(codechat_test_json_string(welcome, "epoch"));
		g_assert_cmpstr(codechat_test_json_string(welcome, "epoch"), ==, epoch);
		codechat_test_ws_send_text(ws, "{\"type\":\"rooms\"}");
		rooms = codechat_test_ws_expect(ws, "rooms");
		list = json_object_get_array_member(rooms, "rooms");
		for (guint k = 0; k < json_array_get_length(list); k++) {
			JsonObject *room = json_array_get_object_element(list, k);

			if (g_strcmp0(codechat_test_json_string(room, "name"), "made-on-a") == 0) {
				found = TRUE;
				g_assert_cmpint(codechat_test_json_int(room, "last_id"), ==, 1);
			}
		}
		g_assert_true(found);
	}
}

/* daemon 0 is killed (SIGKILL) in the middle of a burst: every message it
 * acknowledged is in the history that daemon 1 serves, once, and bob on
 * daemon 1 received each of them live */
static void
test_kill_daemon(Fixture *fx, gconstpointer user_data)
{
	const guint burst = 300;
	g_autoptr(GHashTable) acked = g_hash_table_new_full(NULL, NULL, NULL, g_free);
	CodechatTestWs *alice, *bob, *carol;
	g_autoptr(JsonObject) hist = NULL;
	g_autoptr(GHashTable) live = g_hash_table_new(NULL, NULL);
	JsonArray *messages;
	gint64 max_id = 0;

	if (fx->redis_url == NULL)
		return;
	alice = client(fx, 0, "alice");
	bob = client(fx, 1, "bob");
	join(alice, "burst", -1);
	join(bob, "burst", -1);
	for (guint i = 0; i < burst; i++) {
		g_autofree gchar *text = g_strdup_printf("b%u", i);
		send_say(alice, "burst", text, text);
	}
	/* kill after the first acknowledgements, with many in flight */
	while (g_hash_table_size(acked) < 20) {
		g_autoptr(JsonObject) ack = next_message(alice);
		g_hash_table_insert(acked,
				    GINT_TO_POINTER(codechat_test_json_int(ack, "id")),
				    g_strdup(codechat_test_json_string(ack, "text")));
	}
	g_subprocess_send_signal(fx->daemons[0]->proc, SIGKILL);
	g_subprocess_wait(fx->daemons[0]->proc, NULL, NULL);
	/* the acknowledgements that still made it out before the kill */
	for (;;) {
		g_autoptr(JsonObject) obj = codechat_test_ws_recv(alice, 500);

		if (obj == NULL)
			break;
		if (g_strcmp0(codechat_test_json_string(obj, "type"), "message") == 0)
			g_hash_table_insert(acked,
					    GINT_TO_POINTER(codechat_test_json_int(obj, "id")),
					    g_strdup(codechat_test_json_string(obj, "text")));
	}
	g_ptr_array_remove(fx->clients, alice);
	codechat_test_note("%u of %u messages acknowledged before the kill",
			   g_hash_table_size(acked),
			   burst);

	/* what bob got live: ids 1..n without a gap */
	for (;;) {
		g_autoptr(JsonObject) obj = codechat_test_ws_recv(bob, 1000);

		if (obj == NULL)
			break;
		if (g_strcmp0(codechat_test_json_string(obj, "type"), "message") != 0)
			continue;
		g_assert_cmpint(codechat_test_json_int(obj, "id"), ==, max_id + 1);
		max_id = codechat_test_json_int(obj, "id");
		g_hash_table_add(live, GINT_TO_POINTER(max_id));
	}

	carol = client(fx, 2, "carol");
	codechat_test_ws_send_text(
	    carol,
	    "{\"type\":\"history\",\"room\":\"burst\",\"after\":0,\"limit\":500}");
	hist = codechat_test_ws_expect(carol, "history");
	messages = json_object_get_array_member(hist, "messages");
	g_assert_cmpint((gint64)json_array_get_length(messages), ==, max_id);
	for (guint i = 0; i < json_array_get_length(messages); i++) {
		JsonObject *msg = json_array_get_object_element(messages, i);
		g_autofree gchar *want = g_strdup_printf("b%u", i);

		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, (gint64)i + 1);
		/* in the order alice sent them, none twice */
		g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, want);
	}
	{
		GHashTableIter iter;
		gpointer key, value;

		g_hash_table_iter_init(&iter, acked);
		while (g_hash_table_iter_next(&iter, &key, &value)) {
			gint64 id = GPOINTER_TO_INT(key);

			g_assert_cmpint(id, <=, max_id);
			g_assert_true(g_hash_table_contains(live, key));
			g_assert_cmpstr(codechat_test_json_string(
					    json_array_get_object_element(messages, (guint)id - 1),
					    "text"),
					==,
					value);
		}
	}
}

/* Redis stops and comes back: writes are refused with overloaded while it
 * is away, and then everything works again, ids going on */
static void
test_redis_restart(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice, *bob, *dave;
	gboolean recovered = FALSE;
	gboolean welcome = FALSE;
	gint64 id_after = 0;

	if (fx->redis_url == NULL)
		return;
	alice = client(fx, 0, "alice");
	bob = client(fx, 1, "bob");
	join(alice, "r", -1);
	join(bob, "r", -1);
	/* bob of daemon 1 is a member for daemon 0 too */
	expect_presence(alice, "r", "bob", "join");
	send_say(alice, "r", "before", "before");
	{
		g_autoptr(JsonObject) ack = next_message(alice);
		g_autoptr(JsonObject) got = next_message(bob);

		g_assert_cmpint(codechat_test_json_int(ack, "id"), ==, 1);
		g_assert_cmpint(codechat_test_json_int(got, "id"), ==, 1);
	}

	codechat_test_daemon_redis_stop(fx->redis_dir);
	send_say(alice, "r", "while-away", "away");
	{
		g_autoptr(JsonObject) err =
		    codechat_test_ws_expect_error(alice, "overloaded", "away");
		(void)err;
	}
	/* and so is a hello: its nick cannot be claimed */
	dave = codechat_test_ws_connect_simple(fx->daemons[2]->uri);
	g_ptr_array_add(fx->clients, dave);
	codechat_test_ws_send_text(dave, "{\"type\":\"hello\",\"nick\":\"dave\",\"ref\":\"d\"}");
	{
		g_autoptr(JsonObject) err = codechat_test_ws_expect_error(dave, "overloaded", "d");
		(void)err;
	}

	g_free(codechat_test_daemon_redis_start(redis_server(), fx->redis_dir));
	/* the daemons reconnect on their own, with a backoff of seconds */
	for (guint i = 0; i < 100 && !recovered; i++) {
		g_autoptr(JsonObject) reply = NULL;

		send_say(alice, "r", "after", "after");
		reply = codechat_test_ws_recv(alice, CODECHAT_TEST_TIMEOUT_MS);
		g_assert_nonnull(reply);
		if (g_strcmp0(codechat_test_json_string(reply, "type"), "message") == 0) {
			recovered = TRUE;
			id_after = codechat_test_json_int(reply, "id");
		} else {
			g_assert_cmpstr(codechat_test_json_string(reply, "code"), ==, "overloaded");
			g_usleep(100 * 1000);
		}
	}
	g_assert_true(recovered);
	/* the refused hello may be said again on the same connection */
	for (guint i = 0; i < 100 && !welcome; i++) {
		g_autoptr(JsonObject) reply = NULL;

		codechat_test_ws_send_text(dave, "{\"type\":\"hello\",\"nick\":\"dave\"}");
		reply = codechat_test_ws_recv(dave, CODECHAT_TEST_TIMEOUT_MS);
		g_assert_nonnull(reply);
		if (g_strcmp0(codechat_test_json_string(reply, "type"), "welcome") == 0) {
			welcome = TRUE;
		} else {
			g_assert_cmpstr(codechat_test_json_string(reply, "code"), ==, "overloaded");
			g_usleep(100 * 1000);
		}
	}
	g_assert_true(welcome);
	assert_nothing_pending(dave);
	/* the first message survived in the append-only file, its id too */
	g_assert_cmpint(id_after, ==, 2);
	{
		g_autoptr(JsonObject) got = next_message(bob);

		g_assert_cmpint(codechat_test_json_int(got, "id"), ==, 2);
		g_assert_cmpstr(codechat_test_json_string(got, "text"), ==, "after");
	}
}

/* Redis away: carol's join with since is replayed from her daemon's
 * cache of what it delivered */
static void
test_replay_without_redis(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice, *carol;

	if (fx->redis_url == NULL)
		return;
	alice = client(fx, 0, "alice");
	carol = client(fx, 1, "carol");
	join(alice, "r", -1);
	join(carol, "r", -1);
	for (guint i = 1; i <= 3; i++) {
		g_autofree gchar *text = g_strdup_printf("m%u", i);
		g_autoptr(JsonObject) ack = NULL;
		g_autoptr(JsonObject) got = NULL;

		send_say(alice, "r", text, text);
		ack = next_message(alice);
		/* daemon 1 delivered it */
		got = next_message(carol);
		g_assert_cmpint(codechat_test_json_int(got, "id"), ==, i);
	}
	codechat_test_ws_send_text(carol, "{\"type\":\"part\",\"room\":\"r\"}");
	{
		g_autoptr(JsonObject) parted = codechat_test_ws_expect(carol, "parted");
		(void)parted;
	}

	codechat_test_daemon_redis_stop(fx->redis_dir);
	{
		g_autoptr(JsonObject) joined = join_full(carol, "r", 1);
		g_autoptr(GPtrArray) texts = receive_texts(carol, 2, 2);

		g_assert_false(
		    json_object_get_boolean_member_with_default(joined, "truncated", FALSE));
		g_assert_cmpint(codechat_test_json_int(joined, "last_id"), ==, 3);
		g_assert_cmpstr(texts->pdata[0], ==, "m2");
		g_assert_cmpstr(texts->pdata[1], ==, "m3");
	}
	assert_nothing_pending(carol);
	g_free(codechat_test_daemon_redis_start(redis_server(), fx->redis_dir));
}

/*
 * Presence and membership across daemons: alice on daemon 0 and bob on
 * daemon 1 are members of one room for every daemon, and see each other
 * come and go like members of their own daemon.
 */
static void
test_presence(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice, *bob, *carol;
	g_autoptr(JsonObject) joined_a = NULL;
	g_autoptr(JsonObject) joined_b = NULL;
	g_autoptr(JsonObject) rejoined_b = NULL;
	g_autoptr(JsonObject) parted = NULL;
	g_autofree gchar *members_a = NULL;
	g_autofree gchar *members_b = NULL;
	g_autofree gchar *members_b2 = NULL;

	if (fx->redis_url == NULL)
		return;
	alice = client(fx, 0, "alice");
	joined_a = join_full(alice, "lobby", -1);
	members_a = members_of(joined_a);
	g_assert_cmpstr(members_a, ==, "alice");

	/* bob's joined lists alice of daemon 0; alice sees bob join, bob
	 * gets no presence about himself.  alice's "joined" may leave before
	 * Redis told daemon 1: bob waits until daemon 1 lists her (else he
	 * would get her join as a presence event after his "joined") */
	bob = client(fx, 1, "bob");
	assert_who(bob, "lobby", "alice");
	joined_b = join_full(bob, "lobby", -1);
	members_b = members_of(joined_b);
	g_assert_cmpstr(members_b, ==, "alice,bob");
	expect_presence(alice, "lobby", "bob", "join");
	assert_nothing_pending(bob);

	/* daemon 2 has neither of them, and counts both */
	carol = client(fx, 2, "carol");
	assert_who(carol, "lobby", "alice,bob");
	g_assert_cmpint(rooms_count(carol, "lobby"), ==, 2);

	codechat_test_ws_send_text(bob, "{\"type\":\"part\",\"room\":\"lobby\"}");
	parted = codechat_test_ws_expect(bob, "parted");
	expect_presence(alice, "lobby", "bob", "part");
	assert_who(carol, "lobby", "alice");
	g_assert_cmpint(rooms_count(carol, "lobby"), ==, 1);

	/* back with since: "joined", made at the end of the replay, lists
	 * alice too */
	rejoined_b = join_full(bob, "lobby", 0);
	members_b2 = members_of(rejoined_b);
	g_assert_cmpstr(members_b2, ==, "alice,bob");
	expect_presence(alice, "lobby", "bob", "join");

	/* bob's connection goes: a quit for alice */
	g_ptr_array_remove(fx->clients, bob);
	expect_presence(alice, "lobby", "bob", "quit");
	assert_who(carol, "lobby", "alice");
	assert_nothing_pending(alice);
	assert_nothing_pending(carol);
}

/* a nick is unique across the daemons, whatever its case, until its
 * session ends; the hello's reply keeps its place */
static void
test_nick_taken(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice, *other, *dave;
	g_autoptr(JsonObject) err = NULL;
	g_autoptr(JsonObject) err2 = NULL;
	g_autoptr(JsonObject) welcome = NULL;
	g_autoptr(JsonObject) rooms = NULL;

	if (fx->redis_url == NULL)
		return;
	alice = client(fx, 0, "alice");

	/* a request sent right behind the refused hello waits for its answer,
	 * and is then refused as before any hello */
	other = codechat_test_ws_connect_simple(fx->daemons[1]->uri);
	g_ptr_array_add(fx->clients, other);
	codechat_test_ws_send_text(other, "{\"type\":\"hello\",\"nick\":\"ALICE\",\"ref\":\"h\"}");
	codechat_test_ws_send_text(other, "{\"type\":\"rooms\",\"ref\":\"r\"}");
	err = codechat_test_ws_expect_error(other, "nick-taken", "h");
	err2 = codechat_test_ws_expect_error(other, "not-authenticated", "r");
	g_assert_cmpint(codechat_test_ws_wait_close(other, CODECHAT_TEST_TIMEOUT_MS), ==, 1008);

	/* and behind a hello that is welcome, it is answered after it */
	dave = codechat_test_ws_connect_simple(fx->daemons[1]->uri);
	g_ptr_array_add(fx->clients, dave);
	codechat_test_ws_send_text(dave, "{\"type\":\"hello\",\"nick\":\"dave\"}");
	codechat_test_ws_send_text(dave, "{\"type\":\"rooms\"}");
	welcome = codechat_test_ws_expect(dave, "welcome");
	rooms = codechat_test_ws_expect(dave, "rooms");

	/* once alice is gone, her nick is free on daemon 1 */
	g_ptr_array_remove(fx->clients, alice);
	alice = client_retry(fx, 1, "alice");
	assert_nothing_pending(alice);
}

/* a session that closes while its hello's claim is in flight gives the
 * nick back: hello and the close frame come in one write */
static void
test_hello_then_gone(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GByteArray) bytes = g_byte_array_new();
	const gchar hello[] = "{\"type\":\"hello\",\"nick\":\"erin\"}";
	const guint8 close_payload[] = {0x03, 0xe8}; /* 1000 */
	CodechatTestRaw *raw;
	CodechatTestWs *erin;

	if (fx->redis_url == NULL)
		return;
	raw = codechat_test_raw_connect(fx->daemons[0]->uri);
	codechat_test_raw_build_frame(bytes,
				      0x80 | CODECHAT_TEST_WS_OP_TEXT,
				      TRUE,
				      hello,
				      strlen(hello));
	codechat_test_raw_build_frame(bytes,
				      0x80 | CODECHAT_TEST_WS_OP_CLOSE,
				      TRUE,
				      close_payload,
				      sizeof(close_payload));
	g_assert_true(codechat_test_raw_send_bytes(raw, bytes->data, bytes->len));
	g_assert_cmpint(codechat_test_raw_wait_close(raw, CODECHAT_TEST_TIMEOUT_MS), ==, 1000);
	codechat_test_raw_free(raw);

	erin = client_retry(fx, 1, "erin");
	assert_nothing_pending(erin);
}

/* daemon 0 dies (SIGKILL): the others reap it once its heartbeat expired,
 * its members quit their rooms and its nicks are free again */
static void
test_dead_daemon(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice, *bob, *carol;
	g_autoptr(JsonObject) joined = NULL;
	g_autofree gchar *members = NULL;
	gint64 killed_us;
	gint64 quit_ms;

	if (fx->redis_url == NULL)
		return;
	alice = client(fx, 0, "alice");
	bob = client(fx, 1, "bob");
	carol = client(fx, 2, "carol");
	join(alice, "k", -1);
	/* each joins once the earlier ones are known on its daemon, so that
	 * the only presence events are those asserted */
	assert_who(bob, "k", "alice");
	join(bob, "k", -1);
	expect_presence(alice, "k", "bob", "join");
	assert_who(carol, "k", "alice,bob");
	joined = join_full(carol, "k", -1);
	members = members_of(joined);
	g_assert_cmpstr(members, ==, "alice,bob,carol");
	expect_presence(alice, "k", "carol", "join");
	expect_presence(bob, "k", "carol", "join");

	g_subprocess_send_signal(fx->daemons[0]->proc, SIGKILL);
	g_subprocess_wait(fx->daemons[0]->proc, NULL, NULL);
	killed_us = g_get_monotonic_time();
	g_ptr_array_remove(fx->clients, alice);

	expect_presence(bob, "k", "alice", "quit");
	quit_ms = (g_get_monotonic_time() - killed_us) / 1000;
	expect_presence(carol, "k", "alice", "quit");
	codechat_test_note("quit seen %" G_GINT64_FORMAT " ms after the kill", quit_ms);
	/* a TTL of 500 ms, not the default 10 s */
	g_assert_cmpint(quit_ms, <, 5000);
	assert_who(bob, "k", "bob,carol");
	assert_who(carol, "k", "bob,carol");
	g_assert_cmpint(rooms_count(bob, "k"), ==, 2);

	alice = client_retry(fx, 2, "alice");
	join(alice, "k", -1);
	expect_presence(bob, "k", "alice", "join");
	expect_presence(carol, "k", "alice", "join");
	assert_nothing_pending(bob);
}

int
main(int argc, char **argv)
{
	g_test_init(&argc, &argv, NULL);

#define ADD(path, func)                                                                            \
	g_test_add("/codechat/redis/" path, Fixture, NULL, fixture_setup, func, fixture_teardown)
	ADD("room", test_room);
	ADD("direct", test_direct);
	ADD("move-with-since", test_move);
	ADD("epoch-and-rooms", test_epoch_rooms);
	ADD("kill-daemon-mid-burst", test_kill_daemon);
	ADD("redis-restart", test_redis_restart);
	ADD("replay-without-redis", test_replay_without_redis);
	ADD("presence", test_presence);
	ADD("nick-taken", test_nick_taken);
	ADD("hello-then-gone", test_hello_then_gone);
#undef ADD
	g_test_add("/codechat/redis/dead-daemon",
		   Fixture,
		   GINT_TO_POINTER(1),
		   fixture_setup,
		   test_dead_daemon,
		   fixture_teardown);
	return g_test_run();
}
