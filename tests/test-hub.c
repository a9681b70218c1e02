/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <string.h>

#include "codechat-dbus.h"
#include "codechat-hub.h"
#include "codechat-server.h"
#include "codechat-store.h"
#include "codechat-test-ws.h"

/*
 * The hub in this process, over a real server on loopback, with stores
 * that answer queries later (the memory store's test-only query-delay-ms,
 * as a store over the network would) or that fail on demand, and with
 * messages from "other daemons" emitted on the store.  WebSocket clients
 * run on the same main context.
 */

#define T CODECHAT_TEST_TIMEOUT_MS

/* ------------------------------------------------------------------ */
/* a store that fails on demand, over a memory store */

#define TEST_TYPE_FLAKY_STORE (test_flaky_store_get_type())
G_DECLARE_FINAL_TYPE(TestFlakyStore, test_flaky_store, TEST, FLAKY_STORE, GObject)

struct _TestFlakyStore {
	GObject parent_instance;
	CodechatStore *inner;	/* (owned) */
	gboolean fail;		/* appends and queries fail with overloaded */
	gboolean fail_internal; /* ... or with another error */
};

static void
test_flaky_store_iface_init(CodechatStoreInterface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE(TestFlakyStore,
			      test_flaky_store,
			      G_TYPE_OBJECT,
			      G_IMPLEMENT_INTERFACE(CODECHAT_TYPE_STORE,
						    test_flaky_store_iface_init))

static GError *
flaky_error(TestFlakyStore *self)
{
	if (self->fail_internal)
		return g_error_new_literal(G_IO_ERROR, G_IO_ERROR_FAILED, "disk on fire");
	return g_error_new_literal(CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED, "redis is gone");
}

static const gchar *
flaky_get_epoch(CodechatStore *store)
{
	return codechat_store_get_epoch(TEST_FLAKY_STORE(store)->inner);
}

static guint64
flaky_get_last_id(CodechatStore *store, const gchar *conv)
{
	return codechat_store_get_last_id(TEST_FLAKY_STORE(store)->inner, conv);
}

static void
flaky_append(CodechatStore *store,
	     const gchar *conv,
	     CodechatMessage *msg,
	     CodechatStoreAppendFunc func,
	     gpointer user_data)
{
	TestFlakyStore *self = TEST_FLAKY_STORE(store);

	if (self->fail) {
		g_autoptr(GError) error = flaky_error(self);
		func(msg, error, user_data);
		return;
	}
	codechat_store_append(self->inner, conv, msg, func, user_data);
}

static GPtrArray *
flaky_query(CodechatStore *store,
	    const gchar *conv,
	    guint64 after,
	    guint64 before,
	    guint limit,
	    gboolean newest,
	    gboolean *more,
	    GError **error)
{
	g_assert_not_reached();
	return NULL;
}

static void
flaky_query_async(CodechatStore *store,
		  const gchar *conv,
		  guint64 after,
		  guint64 before,
		  guint limit,
		  gboolean newest,
		  CodechatStoreQueryFunc func,
		  gpointer user_data)
{
	TestFlakyStore *self = TEST_FLAKY_STORE(store);

	if (self->fail) {
		g_autoptr(GError) error = flaky_error(self);
		func(NULL, FALSE, error, user_data);
		return;
	}
	codechat_store_query_async(self->inner,
				   conv,
				   after,
				   before,
				   limit,
				   newest,
				   func,
				   user_data);
}

static gboolean
flaky_remember_nick(CodechatStore *store, const gchar *nick, GError **error)
{
	return codechat_store_remember_nick(TEST_FLAKY_STORE(store)->inner, nick, error);
}

static gboolean
flaky_knows_nick(CodechatStore *store, const gchar *nick)
{
	return codechat_store_knows_nick(TEST_FLAKY_STORE(store)->inner, nick);
}

static GPtrArray *
flaky_list_rooms(CodechatStore *store)
{
	return codechat_store_list_rooms(TEST_FLAKY_STORE(store)->inner);
}

static void
test_flaky_store_iface_init(CodechatStoreInterface *iface)
{
	iface->get_epoch = flaky_get_epoch;
	iface->get_last_id = flaky_get_last_id;
	iface->append = flaky_append;
	iface->query = flaky_query;
	iface->query_async = flaky_query_async;
	iface->remember_nick = flaky_remember_nick;
	iface->knows_nick = flaky_knows_nick;
	iface->list_rooms = flaky_list_rooms;
}

static void
test_flaky_store_finalize(GObject *object)
{
	g_clear_object(&TEST_FLAKY_STORE(object)->inner);
	G_OBJECT_CLASS(test_flaky_store_parent_class)->finalize(object);
}

static void
test_flaky_store_class_init(TestFlakyStoreClass *klass)
{
	G_OBJECT_CLASS(klass)->finalize = test_flaky_store_finalize;
}

static void
test_flaky_store_init(TestFlakyStore *self)
{
	self->inner = codechat_store_memory_new();
}

/* ------------------------------------------------------------------ */
/* fixture */

typedef struct {
	guint delay_ms;	  /* the store's query delay, 0 for none */
	gboolean at_call; /* a delayed query reads its page when made */
	gboolean flaky;	  /* a TestFlakyStore */
} Params;

typedef struct {
	const Params *params;
	CodechatStore *store;	/* (owned) */
	CodechatHub *hub;	/* (owned) (nullable) */
	CodechatServer *server; /* (owned) (nullable) */
	const gchar *uri;
} Fixture;

static void
fixture_setup(Fixture *fx, gconstpointer data)
{
	g_autoptr(GError) error = NULL;
	CodechatHubConfig config;

	fx->params = data;
	if (fx->params->flaky)
		fx->store = g_object_new(TEST_TYPE_FLAKY_STORE, NULL);
	else
		fx->store = g_object_new(CODECHAT_TYPE_STORE_MEMORY,
					 "query-delay-ms",
					 fx->params->delay_ms,
					 "query-at-call",
					 fx->params->at_call,
					 NULL);
	codechat_hub_config_init(&config);
	config.rate = 0;
	config.keepalive = 0;
	config.hello_timeout = 0;
	fx->hub = codechat_hub_new(fx->store, &config);
	fx->server = codechat_server_new(fx->hub, NULL, FALSE);
	codechat_server_listen(fx->server, "127.0.0.1:0", &error);
	g_assert_no_error(error);
	fx->uri = codechat_server_get_uri(fx->server);
}

/* pumps the main context for @ms */
static void
pump_for(guint ms)
{
	gboolean done = FALSE;
	codechat_test_pump_flag(&done, ms);
}

/* the hub must be gone once the queries in flight were answered: they
 * hold it, and nothing else may */
static void
fixture_teardown(Fixture *fx, gconstpointer data)
{
	CodechatHub *hub = fx->hub;
	gboolean gone = FALSE;

	g_object_add_weak_pointer(G_OBJECT(hub), (gpointer *)&hub);
	codechat_server_disconnect(fx->server);
	g_clear_object(&fx->server);
	g_clear_object(&fx->hub);
	/* the queries in flight hold it until they are answered */
	for (guint i = 0; i < 200 && hub != NULL; i++)
		pump_for(10);
	gone = hub == NULL;
	if (!gone)
		g_object_remove_weak_pointer(G_OBJECT(hub), (gpointer *)&hub);
	g_assert_true(gone);
	g_assert_finalize_object(fx->store);
}

static CodechatTestWs *
client(Fixture *fx, const gchar *nick)
{
	return codechat_test_ws_new_client(fx->uri, nick, NULL);
}

static void
expect_presence(CodechatTestWs *ws, const gchar *nick, const gchar *event)
{
	g_autoptr(JsonObject) presence = codechat_test_ws_expect(ws, "presence");

	g_assert_cmpstr(codechat_test_json_string(presence, "nick"), ==, nick);
	g_assert_cmpstr(codechat_test_json_string(presence, "event"), ==, event);
}

static guint64
say_acked(CodechatTestWs *ws, const gchar *room, guint i)
{
	g_autoptr(JsonObject) ack = NULL;
	g_autofree gchar *ref = g_strdup_printf("s%u", i);

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"room\":\"%s\",\"text\":\"m%u\",\"ref\":\"%s\"}",
			       room,
			       i,
			       ref);
	ack = codechat_test_ws_expect(ws, "message");
	g_assert_cmpstr(codechat_test_json_string(ack, "ref"), ==, ref);
	return (guint64)codechat_test_json_int(ack, "id");
}

/* ------------------------------------------------------------------ */
/* join with since while the room is busy */

#define N_BEFORE 6
#define N_DURING 12

/* says and waits for the acknowledgement; another's message that comes
 * first must be @other_id */
static guint64
say_acked_past(CodechatTestWs *ws, const gchar *room, guint i, guint64 *other_id)
{
	g_autofree gchar *ref = g_strdup_printf("s%u", i);

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"room\":\"%s\",\"text\":\"m%u\",\"ref\":\"%s\"}",
			       room,
			       i,
			       ref);
	for (;;) {
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(ws, "message");
		if (g_strcmp0(codechat_test_json_string(msg, "ref"), ref) == 0)
			return (guint64)codechat_test_json_int(msg, "id");
		g_assert_cmpuint(*other_id, ==, 0);
		*other_id = (guint64)codechat_test_json_int(msg, "id");
	}
}

/*
 * bob resumes with since = 2 while alice keeps talking, before, during
 * and after the store reads the replay, and says something right behind
 * his join: bob gets joined, then every id above 2 once, in order, his
 * own among them with its ref, and nothing else.
 */
static void
test_join_since_busy(Fixture *fx, gconstpointer data)
{
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	g_autoptr(CodechatTestWs) bob = client(fx, "bob");
	g_autoptr(JsonObject) joined = NULL;
	guint64 last = 0, next = 3, last_id, bob_id = 0;
	guint n_during = 0;
	gboolean bob_seen = FALSE;
	gint64 sent_us;

	codechat_test_ws_join(alice, "busy");
	for (guint i = 1; i <= N_BEFORE; i++)
		last = say_acked(alice, "busy", i);
	g_assert_cmpuint(last, ==, N_BEFORE);

	codechat_test_ws_send_text(bob, "{\"type\":\"join\",\"room\":\"busy\",\"since\":2}");
	sent_us = g_get_monotonic_time();
	expect_presence(alice, "bob", "join");
	/* alice's says come in while the query is in flight (and after) */
	for (guint i = 0; i < N_DURING; i++) {
		guint64 id = say_acked_past(alice, "busy", N_BEFORE + 1 + i, &bob_id);
		last = MAX(last, id);
		if (g_get_monotonic_time() - sent_us < (gint64)fx->params->delay_ms * 1000 - 5000)
			n_during++;
		if (i == 2)
			codechat_test_ws_send_text(
			    bob,
			    "{\"type\":\"say\",\"room\":\"busy\",\"text\":\"b\",\"ref\":\"b\"}");
		pump_for(fx->params->delay_ms / 6 + 1);
	}
	if (bob_id == 0) {
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(alice, "message");
		bob_id = (guint64)codechat_test_json_int(msg, "id");
	}
	last = MAX(last, bob_id);
	g_assert_cmpuint(last, ==, N_BEFORE + N_DURING + 1);
	codechat_test_note("%u messages stored while the replay was read", n_during);
	if (fx->params->delay_ms > 0)
		g_assert_cmpuint(n_during, >=, 3);

	joined = codechat_test_ws_expect(bob, "joined");
	last_id = (guint64)codechat_test_json_int(joined, "last_id");
	g_assert_cmpuint(last_id, >=, N_BEFORE);
	g_assert_cmpuint(last_id, <=, last);
	/* a page read when asked holds what was there then */
	if (fx->params->at_call)
		g_assert_cmpuint(last_id, ==, N_BEFORE);
	g_assert_false(json_object_has_member(joined, "truncated"));
	while (next <= last) {
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(bob, "message");
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, (gint64)next);
		if (json_object_has_member(msg, "ref")) {
			g_assert_cmpstr(codechat_test_json_string(msg, "ref"), ==, "b");
			g_assert_cmpuint(next, ==, bob_id);
			bob_seen = TRUE;
		}
		next++;
	}
	g_assert_true(bob_seen);
	/* no duplicate comes late */
	pump_for(fx->params->delay_ms + 50);
	g_assert_cmpuint(codechat_test_ws_pending(bob), ==, 0);

	/* and bob is live: his say and alice's come in order */
	g_assert_cmpuint(say_acked(bob, "busy", 100), ==, last + 1);
	{
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(alice, "message");
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, (gint64)last + 1);
	}
}

/* more than a page missed, while the room is busy: truncated, the
 * newest page, then the live messages */
static void
test_join_since_truncated(Fixture *fx, gconstpointer data)
{
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	g_autoptr(CodechatTestWs) bob = client(fx, "bob");
	g_autoptr(JsonObject) joined = NULL;
	guint64 last = 0, next;
	guint n = CODECHAT_MAX_PAGE + 20;

	codechat_test_ws_join(alice, "big");
	for (guint i = 1; i <= n; i++)
		last = say_acked(alice, "big", i);
	codechat_test_ws_send_text(bob, "{\"type\":\"join\",\"room\":\"big\",\"since\":0}");
	expect_presence(alice, "bob", "join");
	for (guint i = 1; i <= 3; i++)
		last = say_acked(alice, "big", n + i);

	joined = codechat_test_ws_expect(bob, "joined");
	g_assert_true(json_object_get_boolean_member_with_default(joined, "truncated", FALSE));
	next = (guint64)codechat_test_json_int(joined, "last_id") - CODECHAT_MAX_PAGE + 1;
	while (next <= last) {
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(bob, "message");
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, (gint64)next);
		next++;
	}
	pump_for(fx->params->delay_ms + 50);
	g_assert_cmpuint(codechat_test_ws_pending(bob), ==, 0);
}

/* presence while the replay is read: joined lists the members as they
 * are, and no presence event about them comes in front of it */
static void
test_join_since_presence(Fixture *fx, gconstpointer data)
{
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	g_autoptr(CodechatTestWs) bob = client(fx, "bob");
	g_autoptr(CodechatTestWs) carol = client(fx, "carol");
	g_autoptr(JsonObject) joined = NULL;
	g_autoptr(JsonObject) presence = NULL;
	JsonArray *members;

	codechat_test_ws_join(alice, "p");
	codechat_test_ws_send_text(bob, "{\"type\":\"join\",\"room\":\"p\",\"since\":0}");
	/* alice hears of bob at once: he is a member from his request on */
	presence = codechat_test_ws_expect(alice, "presence");
	g_assert_cmpstr(codechat_test_json_string(presence, "nick"), ==, "bob");
	codechat_test_ws_join(carol, "p");

	joined = codechat_test_ws_expect(bob, "joined");
	members = json_object_get_array_member(joined, "members");
	g_assert_cmpuint(json_array_get_length(members), ==, 3);
	g_assert_cmpstr(json_array_get_string_element(members, 2), ==, "carol");
	g_assert_cmpint(codechat_test_json_int(joined, "last_id"), ==, 0);
	pump_for(fx->params->delay_ms + 50);
	g_assert_cmpuint(codechat_test_ws_pending(bob), ==, 0);
}

/* ------------------------------------------------------------------ */
/* history */

/* replies come in the order of the requests, whenever the store answers */
static void
test_history_order(Fixture *fx, gconstpointer data)
{
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	const gchar *types[] = {"history", "pong", "history", "message", "members", "history"};
	const gchar *refs[] = {"h1", "p1", "h2", "s1", "w1", "h3"};

	codechat_test_ws_join(alice, "order");
	say_acked(alice, "order", 1);
	codechat_test_ws_send_text(alice,
				   "{\"type\":\"history\",\"room\":\"order\",\"ref\":\"h1\"}");
	codechat_test_ws_send_text(alice, "{\"type\":\"ping\",\"ref\":\"p1\"}");
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"history\",\"room\":\"order\",\"after\":0,\"ref\":\"h2\"}");
	codechat_test_ws_send_text(
	    alice,
	    "{\"type\":\"say\",\"room\":\"order\",\"text\":\"two\",\"ref\":\"s1\"}");
	codechat_test_ws_send_text(alice, "{\"type\":\"who\",\"room\":\"order\",\"ref\":\"w1\"}");
	codechat_test_ws_send_text(alice,
				   "{\"type\":\"history\",\"room\":\"order\",\"ref\":\"h3\"}");
	for (guint i = 0; i < G_N_ELEMENTS(types); i++) {
		g_autoptr(JsonObject) reply = codechat_test_ws_expect(alice, types[i]);
		g_assert_cmpstr(codechat_test_json_string(reply, "ref"), ==, refs[i]);
		if (g_str_equal(types[i], "history")) {
			JsonArray *msgs = json_object_get_array_member(reply, "messages");
			/* h1 and h2 were asked before "two" */
			g_assert_cmpuint(json_array_get_length(msgs), ==, i < 3 ? 1 : 2);
		}
	}
}

/* a session that goes while its history query or its replay is in
 * flight: nothing is used after it is freed (run under ASan) */
static void
test_close_in_flight(Fixture *fx, gconstpointer data)
{
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	g_autoptr(CodechatTestWs) witness = client(fx, "witness");

	codechat_test_ws_join(alice, "gone");
	say_acked(alice, "gone", 1);
	for (guint i = 0; i < 2; i++) {
		g_autoptr(CodechatTestWs) bob = client(fx, "bob");
		if (i == 0)
			codechat_test_ws_send_text(bob, "{\"type\":\"history\",\"room\":\"gone\"}");
		else
			codechat_test_ws_send_text(
			    bob,
			    "{\"type\":\"join\",\"room\":\"gone\",\"since\":0}");
		if (i == 1) {
			g_autoptr(JsonObject) presence = codechat_test_ws_expect(alice, "presence");
			g_assert_cmpstr(codechat_test_json_string(presence, "event"), ==, "join");
		}
		/* held for bob's replay, then dropped with him */
		say_acked(alice, "gone", 2 + i);
		codechat_test_ws_close(bob, SOUP_WEBSOCKET_CLOSE_NORMAL);
		g_assert_cmpint(codechat_test_ws_wait_close(bob, T),
				==,
				SOUP_WEBSOCKET_CLOSE_NORMAL);
		if (i == 1) {
			g_autoptr(JsonObject) presence = codechat_test_ws_expect(alice, "presence");
			g_assert_cmpstr(codechat_test_json_string(presence, "event"), ==, "quit");
		}
	}
	pump_for(fx->params->delay_ms * 2 + 50);
	/* the hub is fine */
	codechat_test_ws_join(witness, "gone");
	{
		g_autoptr(JsonObject) presence = codechat_test_ws_expect(alice, "presence");
		g_assert_cmpstr(codechat_test_json_string(presence, "nick"), ==, "witness");
	}
	g_assert_cmpuint(say_acked(alice, "gone", 10), ==, 4);
	{
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(witness, "message");
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, 4);
	}
}

/* the hub goes (the daemon exits) while queries are in flight: the
 * teardown checks it is finalized once they were answered */
static void
test_hub_gone_in_flight(Fixture *fx, gconstpointer data)
{
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");

	codechat_test_ws_join(alice, "r");
	say_acked(alice, "r", 1);
	codechat_test_ws_send_text(alice, "{\"type\":\"history\",\"room\":\"r\"}");
	codechat_test_ws_send_text(alice, "{\"type\":\"join\",\"room\":\"s\",\"since\":0}");
	pump_for(fx->params->delay_ms / 4);
	g_object_run_dispose(G_OBJECT(fx->hub));
}

typedef struct {
	gboolean done;
	GPtrArray *page; /* (owned) (nullable) */
	GError *error;	 /* (owned) (nullable) */
} HistoryResult;

static void
get_history_cb(GPtrArray *page, const GError *error, gpointer user_data)
{
	HistoryResult *res = user_data;

	g_assert_false(res->done);
	res->done = TRUE;
	if (page != NULL)
		res->page = g_ptr_array_ref(page);
	else
		res->error = g_error_copy(error);
}

/* what D-Bus GetHistory uses: the answer comes from the main loop */
static void
test_get_history_async(Fixture *fx, gconstpointer data)
{
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	HistoryResult res = {0};

	codechat_test_ws_join(alice, "r");
	for (guint i = 1; i <= 5; i++)
		say_acked(alice, "r", i);
	codechat_hub_get_history_async(fx->hub, "r", 5, 3, get_history_cb, &res);
	g_assert_false(res.done);
	g_assert_true(codechat_test_pump_flag(&res.done, T));
	g_assert_no_error(res.error);
	g_assert_cmpuint(res.page->len, ==, 3);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(res.page, 0))->id, ==, 2);
	g_assert_cmpuint(((CodechatMessage *)g_ptr_array_index(res.page, 2))->id, ==, 4);
	g_clear_pointer(&res.page, g_ptr_array_unref);

	/* bad arguments are answered at once */
	res.done = FALSE;
	codechat_hub_get_history_async(fx->hub, "Bad Room", 0, 0, get_history_cb, &res);
	g_assert_true(res.done);
	g_assert_error(res.error, CODECHAT_ERROR, CODECHAT_ERROR_BAD_ROOM);
	g_clear_error(&res.error);
}

typedef struct {
	gboolean done;
	GVariant *reply; /* (owned) (nullable) */
	GError *error;	 /* (owned) (nullable) */
} CallResult;

static void
call_done_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	CallResult *res = user_data;

	res->reply = g_dbus_connection_call_finish(G_DBUS_CONNECTION(source), result, &res->error);
	res->done = TRUE;
}

static void
dbus_get_history(GDBusConnection *conn,
		 const gchar *room,
		 guint64 before,
		 guint limit,
		 CallResult *res)
{
	memset(res, 0, sizeof(*res));
	g_dbus_connection_call(conn,
			       g_dbus_connection_get_unique_name(conn),
			       CODECHAT_DBUS_PATH,
			       "io.github.codechat.Codechat.Daemon1",
			       "GetHistory",
			       g_variant_new("(stu)", room, before, limit),
			       G_VARIANT_TYPE("(aa{sv})"),
			       G_DBUS_CALL_FLAGS_NONE,
			       -1,
			       NULL,
			       call_done_cb,
			       res);
	g_assert_true(codechat_test_pump_flag(&res->done, T));
}

/* D-Bus GetHistory over a store that answers late: the invocation waits */
static void
test_dbus_get_history(Fixture *fx, gconstpointer data)
{
	g_autoptr(GTestDBus) bus = g_test_dbus_new(G_TEST_DBUS_NONE);
	g_autoptr(GDBusConnection) conn = NULL;
	g_autoptr(CodechatDbusService) service = NULL;
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) page = NULL;
	g_autofree gchar *remote = NULL;
	CallResult res;
	gint64 start;
	guint64 id = 0;

	g_test_dbus_up(bus);
	conn = g_dbus_connection_new_for_address_sync(
	    g_test_dbus_get_bus_address(bus),
	    G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
		G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
	    NULL,
	    NULL,
	    &error);
	g_assert_no_error(error);
	service = codechat_dbus_service_new(fx->hub, fx->uri, "bot");
	g_dbus_interface_skeleton_export(G_DBUS_INTERFACE_SKELETON(service),
					 conn,
					 CODECHAT_DBUS_PATH,
					 &error);
	g_assert_no_error(error);

	codechat_test_ws_join(alice, "r");
	for (guint i = 1; i <= 5; i++)
		say_acked(alice, "r", i);

	start = g_get_monotonic_time();
	dbus_get_history(conn, "r", 0, 3, &res);
	g_assert_no_error(res.error);
	/* answered when the store answered, not before */
	g_assert_cmpint(g_get_monotonic_time() - start, >=, (gint64)fx->params->delay_ms * 1000);
	g_variant_get(res.reply, "(@aa{sv})", &page);
	g_assert_cmpuint(g_variant_n_children(page), ==, 3);
	{
		g_autoptr(GVariant) first = g_variant_get_child_value(page, 0);
		g_assert_true(g_variant_lookup(first, "id", "t", &id));
		g_assert_cmpuint(id, ==, 3);
	}
	g_clear_pointer(&res.reply, g_variant_unref);

	/* bad arguments get a named error */
	dbus_get_history(conn, "Not A Room", 0, 0, &res);
	g_assert_nonnull(res.error);
	remote = g_dbus_error_get_remote_error(res.error);
	g_assert_cmpstr(remote, ==, "io.github.codechat.Codechat.Error.BadRoom");
	g_clear_error(&res.error);

	g_dbus_interface_skeleton_unexport(G_DBUS_INTERFACE_SKELETON(service));
	g_clear_object(&service);
	g_dbus_connection_close_sync(conn, NULL, NULL);
	g_clear_object(&conn);
	g_test_dbus_down(bus);
}

/* ------------------------------------------------------------------ */
/* messages of other daemons */

static CodechatMessage *
remote_message(const gchar *room, const gchar *to, const gchar *from, guint64 id)
{
	CodechatMessage *msg = codechat_message_new();

	msg->room = g_strdup(room);
	msg->to = g_strdup(to);
	msg->from = g_strdup(from);
	msg->id = id;
	msg->ts = g_get_real_time();
	msg->text = g_strdup_printf("remote %" G_GUINT64_FORMAT, id);
	return msg;
}

static void
test_remote_message(Fixture *fx, gconstpointer data)
{
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	g_autoptr(CodechatTestWs) bob = client(fx, "bob");
	g_autoptr(CodechatTestWs) carol = client(fx, "carol");
	g_autoptr(CodechatMessage) room_msg = remote_message("lobby", NULL, "zed", 1);
	g_autoptr(CodechatMessage) dm = remote_message(NULL, "bob", "carol", 1);
	g_autoptr(CodechatMessage) dm_out = remote_message(NULL, "yves", "alice", 1);
	g_autofree gchar *dm_key = codechat_store_direct_key("carol", "bob");
	g_autofree gchar *dm_out_key = codechat_store_direct_key("alice", "yves");
	CodechatMetrics *metrics = codechat_hub_get_metrics(fx->hub);
	guint64 stored = metrics->messages_stored;

	codechat_test_ws_join(alice, "lobby");
	codechat_test_ws_join(bob, "lobby");
	expect_presence(alice, "bob", "join");

	/* to the room's members here, without a ref, and not to carol */
	codechat_store_emit_remote_message(fx->store, "lobby", room_msg);
	for (guint i = 0; i < 2; i++) {
		g_autoptr(JsonObject) msg =
		    codechat_test_ws_expect(i == 0 ? alice : bob, "message");
		g_assert_cmpstr(codechat_test_json_string(msg, "room"), ==, "lobby");
		g_assert_cmpstr(codechat_test_json_string(msg, "from"), ==, "zed");
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, 1);
		g_assert_false(json_object_has_member(msg, "ref"));
	}

	/* a direct message: to the sessions of both nicks that are here */
	codechat_store_emit_remote_message(fx->store, dm_key, dm);
	for (guint i = 0; i < 2; i++) {
		g_autoptr(JsonObject) msg =
		    codechat_test_ws_expect(i == 0 ? bob : carol, "message");
		g_assert_cmpstr(codechat_test_json_string(msg, "to"), ==, "bob");
		g_assert_cmpstr(codechat_test_json_string(msg, "from"), ==, "carol");
		g_assert_false(json_object_has_member(msg, "ref"));
	}
	/* ... also when only its author is here */
	codechat_store_emit_remote_message(fx->store, dm_out_key, dm_out);
	{
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(alice, "message");
		g_assert_cmpstr(codechat_test_json_string(msg, "to"), ==, "yves");
	}

	pump_for(50);
	g_assert_cmpuint(codechat_test_ws_pending(alice), ==, 0);
	g_assert_cmpuint(codechat_test_ws_pending(bob), ==, 0);
	g_assert_cmpuint(codechat_test_ws_pending(carol), ==, 0);
	/* stored by the other daemon, not by this one */
	g_assert_cmpuint(metrics->messages_stored, ==, stored);
}

/* a remote message that comes while a replay is read: held, once */
static void
test_remote_message_during_replay(Fixture *fx, gconstpointer data)
{
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	g_autoptr(CodechatTestWs) bob = client(fx, "bob");
	g_autoptr(JsonObject) joined = NULL;
	guint64 last = 0;

	codechat_test_ws_join(alice, "mixed");
	for (guint i = 1; i <= 3; i++)
		last = say_acked(alice, "mixed", i);
	codechat_test_ws_send_text(bob, "{\"type\":\"join\",\"room\":\"mixed\",\"since\":1}");
	expect_presence(alice, "bob", "join");
	/* another daemon's message 4, which this memory store never holds */
	{
		g_autoptr(CodechatMessage) msg = remote_message("mixed", NULL, "zed", last + 1);
		g_autoptr(JsonObject) got = NULL;
		codechat_store_emit_remote_message(fx->store, "mixed", msg);
		got = codechat_test_ws_expect(alice, "message");
		g_assert_cmpint(codechat_test_json_int(got, "id"), ==, (gint64)last + 1);
	}
	joined = codechat_test_ws_expect(bob, "joined");
	for (guint64 id = 2; id <= last + 1; id++) {
		g_autoptr(JsonObject) msg = codechat_test_ws_expect(bob, "message");
		g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, (gint64)id);
	}
	pump_for(fx->params->delay_ms + 50);
	g_assert_cmpuint(codechat_test_ws_pending(bob), ==, 0);
}

/* ------------------------------------------------------------------ */
/* a store that fails */

static void
test_store_errors(Fixture *fx, gconstpointer data)
{
	TestFlakyStore *flaky = TEST_FLAKY_STORE(fx->store);
	g_autoptr(CodechatTestWs) alice = client(fx, "alice");
	g_autoptr(CodechatTestWs) bob = client(fx, "bob");

	GLogLevelFlags fatal;

	/* the hub warns of each store error: expected here */
	fatal = g_log_set_always_fatal(G_LOG_FATAL_MASK | G_LOG_LEVEL_CRITICAL);
	codechat_test_ws_join(alice, "r");
	say_acked(alice, "r", 1);

	for (guint round = 0; round < 2; round++) {
		const gchar *code = round == 0 ? "overloaded" : "internal";
		g_autoptr(JsonObject) err = NULL;
		g_autoptr(JsonObject) members = NULL;
		g_autoptr(JsonObject) presence = NULL;

		flaky->fail = TRUE;
		flaky->fail_internal = round == 1;

		codechat_test_ws_send_text(
		    alice,
		    "{\"type\":\"say\",\"room\":\"r\",\"text\":\"x\",\"ref\":\"s\"}");
		err = codechat_test_ws_expect_error(alice, code, "s");
		if (round == 0)
			g_assert_cmpstr(codechat_test_json_string(err, "message"),
					==,
					"the history store is unavailable, try again");
		g_clear_pointer(&err, json_object_unref);

		codechat_test_ws_send_text(alice,
					   "{\"type\":\"history\",\"room\":\"r\",\"ref\":\"h\"}");
		err = codechat_test_ws_expect_error(alice, code, "h");
		g_clear_pointer(&err, json_object_unref);

		/* a failed resume: an error, and bob is not left in the room */
		codechat_test_ws_send_text(
		    bob,
		    "{\"type\":\"join\",\"room\":\"r\",\"since\":0,\"ref\":\"j\"}");
		err = codechat_test_ws_expect_error(bob, code, "j");
		presence = codechat_test_ws_expect(alice, "presence");
		g_assert_cmpstr(codechat_test_json_string(presence, "event"), ==, "join");
		g_clear_pointer(&presence, json_object_unref);
		presence = codechat_test_ws_expect(alice, "presence");
		g_assert_cmpstr(codechat_test_json_string(presence, "event"), ==, "part");
		codechat_test_ws_send_text(bob, "{\"type\":\"who\",\"room\":\"r\"}");
		members = codechat_test_ws_expect(bob, "members");
		g_assert_cmpuint(
		    json_array_get_length(json_object_get_array_member(members, "members")),
		    ==,
		    1);
	}

	/* and it works again */
	flaky->fail = FALSE;
	g_assert_cmpuint(say_acked(alice, "r", 2), ==, 2);
	g_log_set_always_fatal(fatal);
	g_assert_cmpuint(codechat_hub_get_metrics(fx->hub)->errors[CODECHAT_ERROR_OVERLOADED],
			 ==,
			 3);
}

int
main(int argc, char **argv)
{
	static const Params none = {0, FALSE, FALSE};
	static const Params late = {120, FALSE, FALSE};
	static const Params early = {120, TRUE, FALSE};
	static const Params flaky = {0, FALSE, TRUE};

	g_test_init(&argc, &argv, NULL);

#define ADD(path, params, func)                                                                    \
	g_test_add("/codechat/hub/" path, Fixture, params, fixture_setup, func, fixture_teardown)

	/* "late": the page is read when the store answers (messages
	 * stored meanwhile are in it and held too); "early": when the
	 * query is made (they are only held) */
	ADD("join-since/busy/sync", &none, test_join_since_busy);
	ADD("join-since/busy/late", &late, test_join_since_busy);
	ADD("join-since/busy/early", &early, test_join_since_busy);
	ADD("join-since/truncated/late", &late, test_join_since_truncated);
	ADD("join-since/truncated/early", &early, test_join_since_truncated);
	ADD("join-since/presence", &late, test_join_since_presence);
	ADD("history/order/sync", &none, test_history_order);
	ADD("history/order/delayed", &late, test_history_order);
	ADD("close-in-flight", &late, test_close_in_flight);
	ADD("hub-gone-in-flight", &late, test_hub_gone_in_flight);
	ADD("get-history-async", &late, test_get_history_async);
	ADD("dbus-get-history", &late, test_dbus_get_history);
	ADD("remote-message", &none, test_remote_message);
	ADD("remote-message/during-replay/late", &late, test_remote_message_during_replay);
	ADD("remote-message/during-replay/early", &early, test_remote_message_during_replay);
	ADD("store-errors", &flaky, test_store_errors);

	return g_test_run();
}
