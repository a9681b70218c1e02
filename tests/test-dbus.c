/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include <glib/gstdio.h>
#include <signal.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/types.h>
#include <unistd.h>

#include "codechat-test-client.h"
#include "codechat-test-daemon.h"
#include "codechat-test-ws.h"

/*
 * The D-Bus service of codechatd (DESIGN.md, "D-Bus interface"): every
 * test starts a private dbus-daemon (GTestDBus) and a real codechatd with
 * --bus session on it, and talks to both over D-Bus and WebSocket.  Every
 * call has a timeout and every wait a deadline.
 */

#define T CODECHAT_TEST_TIMEOUT_MS

#define DBUS_NAME  "io.github.codechat.Codechat.Daemon"
#define DBUS_PATH  "/io/github/codechat/Codechat/Daemon"
#define DBUS_IFACE "io.github.codechat.Codechat.Daemon1"
#define ERR_PREFIX "io.github.codechat.Codechat.Error."

#define NICK "robot"

#define ALREADY_OWNED                                                                              \
	"codechatd: " DBUS_NAME " is already owned on the session bus: another codechatd is "      \
	"running (--replace takes over from it)"

static gchar *services_dir; /* (owned) (nullable) */

/* what a case asks of its fixture */
typedef struct {
	const gchar *const *args; /* extra daemon arguments */
	gboolean no_daemon;	  /* the case starts its daemons itself */
	gboolean activation;	  /* prepare the bus for D-Bus activation */
} Case;

static const gchar *const args_default[] = {NULL};
static const gchar *const args_no_rate[] = {"--rate-limit", "0", NULL};
static const gchar *const args_rate[] = {"--rate-limit", "1", "--rate-burst", "2", NULL};

static const Case case_default = {args_default, FALSE, FALSE};
static const Case case_no_rate = {args_no_rate, FALSE, FALSE};
static const Case case_rate = {args_rate, FALSE, FALSE};
static const Case case_activation = {NULL, TRUE, TRUE};

typedef struct {
	gchar *name;	  /* (owned) member name, or "PropertiesChanged" */
	GVariant *params; /* (owned) */
} Signal;

static void
signal_free(Signal *sig)
{
	g_free(sig->name);
	g_variant_unref(sig->params);
	g_free(sig);
}

typedef struct {
	GTestDBus *bus;		    /* (owned) */
	GDBusConnection *conn;	    /* (owned) a private connection to bus */
	guint sub_id;		    /* every signal of DBUS_IFACE */
	guint props_sub_id;	    /* PropertiesChanged */
	GPtrArray *signals;	    /* (owned) (element-type Signal) in order */
	CodechatTestDaemon *daemon; /* (owned) (nullable) */
	GPtrArray *clients;	    /* (owned) (element-type CodechatTestWs) */
	gchar *act_dir;		    /* (owned) (nullable) data dir of an activated daemon */
	gchar *old_config_home;	    /* (owned) (nullable) XDG_CONFIG_HOME before */
	gboolean stopped;	    /* the case ended the daemon itself */
} Fixture;

/* pumping the main context with a deadline */

typedef gboolean (*CondFunc)(gpointer data);

static gboolean
deadline_cb(gpointer data)
{
	*(gboolean *)data = TRUE;
	return G_SOURCE_REMOVE;
}

static gboolean
pump_until(CondFunc cond, gpointer data, guint timeout_ms)
{
	g_autoptr(GSource) source = NULL;
	gboolean expired = FALSE;

	if (cond(data))
		return TRUE;
	source = g_timeout_source_new(timeout_ms);
	g_source_set_callback(source, deadline_cb, &expired, NULL);
	g_source_attach(source, NULL);
	while (!cond(data) && !expired)
		g_main_context_iteration(NULL, TRUE);
	g_source_destroy(source);
	return cond(data);
}

static gboolean
never(gpointer data)
{
	return FALSE;
}

/* lets whatever is under way arrive for @ms */
static void
pump_for(guint ms)
{
	pump_until(never, NULL, ms);
}

static void
pump_pending(void)
{
	while (g_main_context_iteration(NULL, FALSE))
		;
}

/* signals */

static void
signal_cb(GDBusConnection *conn,
	  const gchar *sender,
	  const gchar *path,
	  const gchar *iface,
	  const gchar *member,
	  GVariant *params,
	  gpointer user_data)
{
	Fixture *fx = user_data;
	Signal *sig = g_new0(Signal, 1);

	sig->name = g_strdup(member);
	sig->params = g_variant_ref(params);
	g_ptr_array_add(fx->signals, sig);
}

typedef struct {
	Fixture *fx;
	const gchar *name;
	guint index; /* out */
} FindSignal;

static gboolean
find_signal(gpointer data)
{
	FindSignal *find = data;

	for (guint i = 0; i < find->fx->signals->len; i++) {
		Signal *sig = g_ptr_array_index(find->fx->signals, i);
		if (g_strcmp0(sig->name, find->name) == 0) {
			find->index = i;
			return TRUE;
		}
	}
	return FALSE;
}

/* waits for the first signal @name and takes it out of the queue */
static GVariant *
wait_signal(Fixture *fx, const gchar *name, guint timeout_ms)
{
	FindSignal find = {fx, name, 0};
	Signal *sig;
	GVariant *params;

	if (!pump_until(find_signal, &find, timeout_ms)) {
		codechat_test_note("no %s signal within %u ms", name, timeout_ms);
		return NULL;
	}
	sig = g_ptr_array_steal_index(fx->signals, find.index);
	params = g_steal_pointer(&sig->params);
	g_free(sig->name);
	g_free(sig);
	return params;
}

static guint
count_signals(Fixture *fx, const gchar *name)
{
	guint n = 0;

	for (guint i = 0; i < fx->signals->len; i++) {
		Signal *sig = g_ptr_array_index(fx->signals, i);
		if (g_strcmp0(sig->name, name) == 0)
			n++;
	}
	return n;
}

/* calls */

static GVariant *
bus_call(GDBusConnection *conn,
	 const gchar *dest,
	 const gchar *path,
	 const gchar *iface,
	 const gchar *method,
	 GVariant *params,
	 const gchar *reply_type,
	 GError **error)
{
	return g_dbus_connection_call_sync(conn,
					   dest,
					   path,
					   iface,
					   method,
					   params,
					   reply_type != NULL ? G_VARIANT_TYPE(reply_type) : NULL,
					   G_DBUS_CALL_FLAGS_NONE,
					   T,
					   NULL,
					   error);
}

static GVariant *
daemon_call(Fixture *fx,
	    const gchar *method,
	    GVariant *params,
	    const gchar *reply_type,
	    GError **error)
{
	return bus_call(fx->conn,
			DBUS_NAME,
			DBUS_PATH,
			DBUS_IFACE,
			method,
			params,
			reply_type,
			error);
}

/* a call that must succeed */
static GVariant *
daemon_call_ok(Fixture *fx, const gchar *method, GVariant *params, const gchar *reply_type)
{
	g_autoptr(GError) error = NULL;
	GVariant *reply = daemon_call(fx, method, params, reply_type, &error);

	g_assert_no_error(error);
	g_assert_nonnull(reply);
	return reply;
}

/* a call that must fail with the D-Bus error ERR_PREFIX @name */
static void
assert_call_error(Fixture *fx, const gchar *method, GVariant *params, const gchar *name)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = daemon_call(fx, method, params, NULL, &error);
	g_autofree gchar *remote = NULL;
	g_autofree gchar *want = g_strconcat(ERR_PREFIX, name, NULL);

	if (reply != NULL)
		codechat_test_note("%s returned %s, expected %s",
				   method,
				   g_variant_print(reply, TRUE),
				   want);
	g_assert_null(reply);
	g_assert_nonnull(error);
	remote = g_dbus_error_get_remote_error(error);
	if (g_strcmp0(remote, want) != 0)
		codechat_test_note("%s failed with %s", method, error->message);
	g_assert_cmpstr(remote, ==, want);
}

/* barrier: every signal the daemon emitted before it answers is queued
 * in the context before the answer comes; dispatch them */
static void
sync_daemon(Fixture *fx)
{
	GVariant *reply = daemon_call_ok(fx, "GetStatus", NULL, "(a{sv})");

	g_variant_unref(reply);
	pump_pending();
}

static guint64
send_message(Fixture *fx, const gchar *room, const gchar *text, GVariant *options)
{
	g_autoptr(GVariant) reply = NULL;
	guint64 id = 0;

	if (options == NULL)
		options = g_variant_new("a{sv}", NULL);
	reply = daemon_call_ok(fx, "Send", g_variant_new("(ss@a{sv})", room, text, options), "(t)");
	g_variant_get(reply, "(t)", &id);
	return id;
}

static gchar *
name_owner(GDBusConnection *conn, const gchar *name)
{
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GError) error = NULL;
	gchar *owner = NULL;

	reply = bus_call(conn,
			 "org.freedesktop.DBus",
			 "/org/freedesktop/DBus",
			 "org.freedesktop.DBus",
			 "GetNameOwner",
			 g_variant_new("(s)", name),
			 "(s)",
			 &error);
	if (reply == NULL) {
		g_assert_true(g_dbus_error_is_remote_error(error));
		return NULL;
	}
	g_variant_get(reply, "(s)", &owner);
	return owner;
}

static guint32
owner_pid(GDBusConnection *conn, const gchar *name)
{
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GError) error = NULL;
	guint32 pid = 0;

	reply = bus_call(conn,
			 "org.freedesktop.DBus",
			 "/org/freedesktop/DBus",
			 "org.freedesktop.DBus",
			 "GetConnectionUnixProcessID",
			 g_variant_new("(s)", name),
			 "(u)",
			 &error);
	g_assert_no_error(error);
	g_variant_get(reply, "(u)", &pid);
	return pid;
}

typedef struct {
	GDBusConnection *conn;
	gboolean want_owned;
	const gchar *not_owner; /* (nullable) an owner that does not count */
} OwnerWait;

static gboolean
owner_is(gpointer data)
{
	OwnerWait *w = data;
	g_autofree gchar *owner = name_owner(w->conn, DBUS_NAME);

	if (!w->want_owned)
		return owner == NULL;
	return owner != NULL && g_strcmp0(owner, w->not_owner) != 0;
}

static gboolean
poll_cond(CondFunc cond, gpointer data, guint timeout_ms)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)timeout_ms * 1000;

	while (!cond(data)) {
		if (g_get_monotonic_time() > deadline)
			return FALSE;
		pump_for(20);
	}
	return TRUE;
}

/* waits until DBUS_NAME has an owner other than @not_owner */
static gboolean
wait_name_owned(GDBusConnection *conn, const gchar *not_owner, guint timeout_ms)
{
	OwnerWait w = {conn, TRUE, not_owner};
	return poll_cond(owner_is, &w, timeout_ms);
}

static gboolean
wait_name_vanished(GDBusConnection *conn, guint timeout_ms)
{
	OwnerWait w = {conn, FALSE, NULL};
	return poll_cond(owner_is, &w, timeout_ms);
}

static pid_t
daemon_pid(CodechatTestDaemon *daemon)
{
	const gchar *id = g_subprocess_get_identifier(daemon->proc);

	g_assert_nonnull(id);
	return (pid_t)g_ascii_strtoll(id, NULL, 10);
}

/* a daemon on the test bus, serving its name */
static CodechatTestDaemon *
start_daemon(Fixture *fx, const gchar *const *extra, const gchar *not_owner)
{
	g_autoptr(GPtrArray) args = g_ptr_array_new();
	CodechatTestDaemon *daemon;

	g_ptr_array_add(args, (gpointer) "--bus");
	g_ptr_array_add(args, (gpointer) "session");
	g_ptr_array_add(args, (gpointer) "--nick");
	g_ptr_array_add(args, (gpointer)NICK);
	g_ptr_array_add(args, (gpointer) "--notify");
	g_ptr_array_add(args, (gpointer) "off");
	for (guint i = 0; extra != NULL && extra[i] != NULL; i++)
		g_ptr_array_add(args, (gpointer)extra[i]);
	g_ptr_array_add(args, NULL);
	daemon = codechat_test_daemon_start((const gchar *const *)args->pdata);
	if (!wait_name_owned(fx->conn, not_owner, T))
		codechat_test_note("codechatd did not take %s", DBUS_NAME);
	g_assert_cmpuint(owner_pid(fx->conn, DBUS_NAME), ==, (guint32)daemon_pid(daemon));
	return daemon;
}

/* waiting for a subprocess with a deadline */

static void
wait_done_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	gboolean *done = user_data;

	g_subprocess_wait_finish(G_SUBPROCESS(source), res, NULL);
	*done = TRUE;
}

static gint
wait_exit(GSubprocess *proc, guint timeout_ms)
{
	gboolean done = FALSE;

	g_subprocess_wait_async(proc, NULL, wait_done_cb, &done);
	if (!codechat_test_pump_flag(&done, timeout_ms)) {
		codechat_test_note("a daemon did not exit within %u ms", timeout_ms);
		g_subprocess_force_exit(proc);
		codechat_test_pump_flag(&done, T);
		return -1;
	}
	if (!g_subprocess_get_if_exited(proc))
		return -1;
	return g_subprocess_get_exit_status(proc);
}

/* fixture */

static void
fixture_setup(Fixture *fx, gconstpointer user_data)
{
	const Case *c = user_data;
	g_autoptr(GError) error = NULL;

	fx->signals = g_ptr_array_new_with_free_func((GDestroyNotify)signal_free);
	fx->clients = g_ptr_array_new_with_free_func((GDestroyNotify)codechat_test_ws_free);
	fx->bus = g_test_dbus_new(G_TEST_DBUS_NONE);
	if (c->activation) {
		/* the bus passes its environment on to the daemons it starts */
		fx->act_dir = g_dir_make_tmp("codechat-test-act-XXXXXX", &error);
		g_assert_no_error(error);
		g_setenv("CODECHATD_DATA_DIR", fx->act_dir, TRUE);
		g_setenv("CODECHATD_LISTEN", "127.0.0.1:0", TRUE);
		g_setenv("CODECHATD_NICK", NICK, TRUE);
		g_setenv("CODECHATD_NOTIFY", "off", TRUE);
		fx->old_config_home = g_strdup(g_getenv("XDG_CONFIG_HOME"));
		g_setenv("XDG_CONFIG_HOME", fx->act_dir, TRUE);
		g_test_dbus_add_service_dir(fx->bus, services_dir);
	}
	codechat_test_dbus_up(fx->bus);
	if (c->activation) {
		g_unsetenv("CODECHATD_DATA_DIR");
		g_unsetenv("CODECHATD_LISTEN");
		g_unsetenv("CODECHATD_NICK");
		g_unsetenv("CODECHATD_NOTIFY");
	}
	fx->conn = g_dbus_connection_new_for_address_sync(
	    g_test_dbus_get_bus_address(fx->bus),
	    G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
		G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
	    NULL,
	    NULL,
	    &error);
	g_assert_no_error(error);
	fx->sub_id = g_dbus_connection_signal_subscribe(fx->conn,
							NULL,
							DBUS_IFACE,
							NULL,
							DBUS_PATH,
							NULL,
							G_DBUS_SIGNAL_FLAGS_NONE,
							signal_cb,
							fx,
							NULL);
	fx->props_sub_id = g_dbus_connection_signal_subscribe(fx->conn,
							      NULL,
							      "org.freedesktop.DBus.Properties",
							      "PropertiesChanged",
							      DBUS_PATH,
							      DBUS_IFACE,
							      G_DBUS_SIGNAL_FLAGS_NONE,
							      signal_cb,
							      fx,
							      NULL);
	if (!c->no_daemon)
		fx->daemon = start_daemon(fx, c->args, NULL);
}

static void
fixture_teardown(Fixture *fx, gconstpointer user_data)
{
	/* clients first, so that the daemon does not wait on peers that
	 * nobody pumps while stop() blocks */
	g_ptr_array_set_size(fx->clients, 0);
	if (fx->daemon != NULL && !fx->stopped)
		g_assert_cmpint(codechat_test_daemon_stop(fx->daemon), ==, 0);
	g_clear_pointer(&fx->daemon, codechat_test_daemon_free);
	g_dbus_connection_signal_unsubscribe(fx->conn, fx->sub_id);
	g_dbus_connection_signal_unsubscribe(fx->conn, fx->props_sub_id);
	g_dbus_connection_close_sync(fx->conn, NULL, NULL);
	g_clear_object(&fx->conn);
	pump_pending();
	g_test_dbus_down(fx->bus);
	g_clear_object(&fx->bus);
	if (fx->act_dir != NULL) {
		codechat_test_rm_rf(fx->act_dir);
		if (fx->old_config_home != NULL)
			g_setenv("XDG_CONFIG_HOME", fx->old_config_home, TRUE);
		else
			g_unsetenv("XDG_CONFIG_HOME");
	}
	g_clear_pointer(&fx->old_config_home, g_free);
	g_clear_pointer(&fx->act_dir, g_free);
	g_clear_pointer(&fx->clients, g_ptr_array_unref);
	g_clear_pointer(&fx->signals, g_ptr_array_unref);
}

/* WebSocket clients owned by the fixture */

static CodechatTestWs *
fx_client(Fixture *fx, const gchar *nick)
{
	CodechatTestWs *ws = codechat_test_ws_new_client(fx->daemon->uri, nick, NULL);
	g_ptr_array_add(fx->clients, ws);
	return ws;
}

static void
ws_join(CodechatTestWs *ws, const gchar *room)
{
	g_autoptr(JsonObject) joined = NULL;

	codechat_test_ws_sendf(ws, "{\"type\":\"join\",\"room\":\"%s\"}", room);
	joined = codechat_test_ws_expect(ws, "joined");
	g_assert_cmpstr(codechat_test_json_string(joined, "room"), ==, room);
}

/* the next frame of @type with the ref "r", past presence events and
 * messages from others */
static JsonObject *
ws_expect_own(CodechatTestWs *ws, const gchar *type)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)T * 1000;

	for (;;) {
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;
		JsonObject *obj = left > 0 ? codechat_test_ws_recv(ws, (guint)left) : NULL;
		const gchar *got;

		if (obj == NULL)
			codechat_test_note("expected a \"%s\", got nothing", type);
		g_assert_nonnull(obj);
		got = codechat_test_json_string(obj, "type");
		if (g_strcmp0(got, "presence") != 0 &&
		    (g_strcmp0(got, "message") != 0 || json_object_has_member(obj, "ref"))) {
			g_assert_cmpstr(got, ==, type);
			return obj;
		}
		json_object_unref(obj);
	}
}

static JsonObject *
ws_say(CodechatTestWs *ws, const gchar *room, const gchar *text)
{
	JsonObject *msg;

	codechat_test_ws_sendf(ws,
			       "{\"type\":\"say\",\"room\":\"%s\",\"text\":\"%s\",\"ref\":\"r\"}",
			       room,
			       text);
	msg = ws_expect_own(ws, "message");
	g_assert_cmpstr(codechat_test_json_string(msg, "ref"), ==, "r");
	return msg;
}

/* dictionaries */

static const gchar *
dict_string(GVariant *dict, const gchar *key)
{
	const gchar *value = NULL;

	if (!g_variant_lookup(dict, key, "&s", &value))
		codechat_test_note("no string \"%s\" in %s", key, g_variant_print(dict, TRUE));
	g_assert_nonnull(value);
	return value;
}

static guint64
dict_uint64(GVariant *dict, const gchar *key)
{
	guint64 value = 0;

	if (!g_variant_lookup(dict, key, "t", &value)) {
		codechat_test_note("no uint64 \"%s\" in %s", key, g_variant_print(dict, TRUE));
		g_assert_not_reached();
	}
	return value;
}

static guint32
dict_uint32(GVariant *dict, const gchar *key)
{
	guint32 value = 0;

	if (!g_variant_lookup(dict, key, "u", &value)) {
		codechat_test_note("no uint32 \"%s\" in %s", key, g_variant_print(dict, TRUE));
		g_assert_not_reached();
	}
	return value;
}

static void
assert_ts(const gchar *ts)
{
	g_autoptr(GDateTime) dt = g_date_time_new_from_iso8601(ts, NULL);

	g_assert_nonnull(dt);
	g_assert_true(g_str_has_suffix(ts, "Z"));
}

/* the message dictionary of MessagePosted */
static void
assert_message_dict(GVariant *msg,
		    const gchar *room,
		    guint64 id,
		    const gchar *from,
		    const gchar *kind,
		    const gchar *text)
{
	g_assert_true(g_variant_is_of_type(msg, G_VARIANT_TYPE_VARDICT));
	g_assert_cmpstr(dict_string(msg, "room"), ==, room);
	g_assert_cmpuint(dict_uint64(msg, "id"), ==, id);
	g_assert_cmpstr(dict_string(msg, "from"), ==, from);
	assert_ts(dict_string(msg, "ts"));
	g_assert_cmpstr(dict_string(msg, "kind"), ==, kind);
	g_assert_cmpstr(dict_string(msg, "text"), ==, text);
	g_assert_false(g_variant_lookup(msg, "to", "&s", NULL));
}

/* the cases */

static void
test_send(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	g_autoptr(JsonObject) m1 = NULL;
	g_autoptr(JsonObject) m2 = NULL;
	g_auto(GVariantDict) opts = G_VARIANT_DICT_INIT(NULL);
	guint64 id1, id2;

	ws_join(alice, "general");

	/* from the daemon's --nick by default, kind text */
	id1 = send_message(fx, "general", "hello from dbus", NULL);
	g_assert_cmpuint(id1, ==, 1);
	m1 = codechat_test_ws_expect(alice, "message");
	g_assert_cmpint(codechat_test_json_int(m1, "id"), ==, (gint64)id1);
	g_assert_cmpstr(codechat_test_json_string(m1, "room"), ==, "general");
	g_assert_cmpstr(codechat_test_json_string(m1, "from"), ==, NICK);
	g_assert_cmpstr(codechat_test_json_string(m1, "kind"), ==, "text");
	g_assert_cmpstr(codechat_test_json_string(m1, "text"), ==, "hello from dbus");
	g_assert_false(json_object_has_member(m1, "ref"));

	/* the options: from, kind, lang, filename */
	g_variant_dict_insert(&opts, "from", "s", "scripter");
	g_variant_dict_insert(&opts, "kind", "s", "code");
	g_variant_dict_insert(&opts, "lang", "s", "c");
	g_variant_dict_insert(&opts, "filename", "s", "main.c");
	id2 = send_message(fx, "general", "int main(void);", g_variant_dict_end(&opts));
	g_assert_cmpuint(id2, ==, id1 + 1);
	m2 = codechat_test_ws_expect(alice, "message");
	g_assert_cmpint(codechat_test_json_int(m2, "id"), ==, (gint64)id2);
	g_assert_cmpstr(codechat_test_json_string(m2, "from"), ==, "scripter");
	g_assert_cmpstr(codechat_test_json_string(m2, "kind"), ==, "code");
	g_assert_cmpstr(codechat_test_json_string(m2, "lang"), ==, "c");
	g_assert_cmpstr(codechat_test_json_string(m2, "filename"), ==, "main.c");
	g_assert_cmpstr(codechat_test_json_string(m2, "text"), ==, "int main(void);");

	/* an action from nobody in particular */
	{
		g_auto(GVariantDict) action = G_VARIANT_DICT_INIT(NULL);
		g_autoptr(JsonObject) m3 = NULL;
		guint64 id3;

		g_variant_dict_insert(&action, "kind", "s", "action");
		id3 = send_message(fx, "general", "waves", g_variant_dict_end(&action));
		g_assert_cmpuint(id3, ==, id2 + 1);
		m3 = codechat_test_ws_expect(alice, "message");
		g_assert_cmpstr(codechat_test_json_string(m3, "kind"), ==, "action");
		g_assert_cmpstr(codechat_test_json_string(m3, "from"), ==, NICK);
	}
	g_assert_cmpuint(codechat_test_ws_pending(alice), ==, 0);
}

static void
test_message_posted_ws(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	g_autoptr(JsonObject) msg = NULL;
	g_autoptr(GVariant) params = NULL;
	g_autoptr(GVariant) dict = NULL;
	guint64 id;

	ws_join(alice, "general");
	msg = ws_say(alice, "general", "hi there");
	id = (guint64)codechat_test_json_int(msg, "id");

	params = wait_signal(fx, "MessagePosted", T);
	g_assert_nonnull(params);
	g_assert_cmpstr(g_variant_get_type_string(params), ==, "(a{sv})");
	dict = g_variant_get_child_value(params, 0);
	assert_message_dict(dict, "general", id, "alice", "text", "hi there");
	g_assert_cmpstr(dict_string(dict, "ts"), ==, codechat_test_json_string(msg, "ts"));
	g_assert_false(g_variant_lookup(dict, "lang", "&s", NULL));
	g_assert_false(g_variant_lookup(dict, "filename", "&s", NULL));

	/* exactly once */
	sync_daemon(fx);
	pump_for(200);
	g_assert_cmpuint(count_signals(fx, "MessagePosted"), ==, 0);
}

static void
test_message_posted_send(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GVariant) params = NULL;
	g_autoptr(GVariant) dict = NULL;
	g_auto(GVariantDict) opts = G_VARIANT_DICT_INIT(NULL);
	guint64 id;

	g_variant_dict_insert(&opts, "kind", "s", "code");
	g_variant_dict_insert(&opts, "lang", "s", "diff");
	g_variant_dict_insert(&opts, "filename", "s", "fix.patch");
	id = send_message(fx, "dev", "+ fixed", g_variant_dict_end(&opts));
	g_assert_cmpuint(id, ==, 1);

	params = wait_signal(fx, "MessagePosted", T);
	g_assert_nonnull(params);
	dict = g_variant_get_child_value(params, 0);
	assert_message_dict(dict, "dev", id, NICK, "code", "+ fixed");
	g_assert_cmpstr(dict_string(dict, "lang"), ==, "diff");
	g_assert_cmpstr(dict_string(dict, "filename"), ==, "fix.patch");

	sync_daemon(fx);
	pump_for(200);
	g_assert_cmpuint(count_signals(fx, "MessagePosted"), ==, 0);
}

static void
test_list_rooms(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GVariant) rooms = NULL;
	gboolean seen_general = FALSE, seen_dev = FALSE;

	reply = daemon_call_ok(fx, "ListRooms", NULL, "(aa{sv})");
	rooms = g_variant_get_child_value(reply, 0);
	g_assert_cmpuint(g_variant_n_children(rooms), ==, 0);
	g_clear_pointer(&rooms, g_variant_unref);
	g_clear_pointer(&reply, g_variant_unref);

	ws_join(alice, "general");
	ws_join(bob, "general");
	{
		g_autoptr(JsonObject) m = ws_say(alice, "general", "one");
		(void)m;
	}
	send_message(fx, "general", "two", NULL);
	send_message(fx, "dev", "three", NULL);

	reply = daemon_call_ok(fx, "ListRooms", NULL, "(aa{sv})");
	rooms = g_variant_get_child_value(reply, 0);
	g_assert_cmpuint(g_variant_n_children(rooms), ==, 2);
	for (gsize i = 0; i < g_variant_n_children(rooms); i++) {
		g_autoptr(GVariant) room = g_variant_get_child_value(rooms, i);
		const gchar *name = dict_string(room, "name");

		g_assert_cmpstr(dict_string(room, "topic"), ==, "");
		if (g_strcmp0(name, "general") == 0) {
			seen_general = TRUE;
			g_assert_cmpuint(dict_uint32(room, "members"), ==, 2);
			g_assert_cmpuint(dict_uint64(room, "last_id"), ==, 2);
		} else if (g_strcmp0(name, "dev") == 0) {
			seen_dev = TRUE;
			g_assert_cmpuint(dict_uint32(room, "members"), ==, 0);
			g_assert_cmpuint(dict_uint64(room, "last_id"), ==, 1);
		} else {
			codechat_test_note("unexpected room %s", name);
			g_assert_not_reached();
		}
	}
	g_assert_true(seen_general);
	g_assert_true(seen_dev);
}

static void
test_list_members(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autoptr(GVariant) reply = NULL;
	g_auto(GStrv) members = NULL;

	reply = daemon_call_ok(fx, "ListMembers", g_variant_new("(s)", "general"), "(as)");
	g_variant_get(reply, "(^as)", &members);
	g_assert_cmpuint(g_strv_length(members), ==, 0);
	g_clear_pointer(&members, g_strfreev);
	g_clear_pointer(&reply, g_variant_unref);

	ws_join(alice, "general");
	ws_join(bob, "general");
	{
		g_autoptr(JsonObject) presence = codechat_test_ws_expect(alice, "presence");
		(void)presence;
	}
	reply = daemon_call_ok(fx, "ListMembers", g_variant_new("(s)", "general"), "(as)");
	g_variant_get(reply, "(^as)", &members);
	g_assert_cmpuint(g_strv_length(members), ==, 2);
	g_assert_true(g_strv_contains((const gchar *const *)members, "alice"));
	g_assert_true(g_strv_contains((const gchar *const *)members, "bob"));
	g_clear_pointer(&members, g_strfreev);
	g_clear_pointer(&reply, g_variant_unref);

	/* another room is not this one */
	reply = daemon_call_ok(fx, "ListMembers", g_variant_new("(s)", "dev"), "(as)");
	g_variant_get(reply, "(^as)", &members);
	g_assert_cmpuint(g_strv_length(members), ==, 0);
}

static GVariant *
get_history(Fixture *fx, const gchar *room, guint64 before, guint limit)
{
	g_autoptr(GVariant) reply = daemon_call_ok(fx,
						   "GetHistory",
						   g_variant_new("(stu)", room, before, limit),
						   "(aa{sv})");
	return g_variant_get_child_value(reply, 0);
}

/* the ids of a page, which must be consecutive and end at @last */
static void
assert_page(GVariant *page, guint64 first, guint64 last)
{
	gsize n = g_variant_n_children(page);

	g_assert_cmpuint(n, ==, last - first + 1);
	for (gsize i = 0; i < n; i++) {
		g_autoptr(GVariant) msg = g_variant_get_child_value(page, i);
		g_autofree gchar *text = g_strdup_printf("m%" G_GUINT64_FORMAT, first + i);

		g_assert_cmpuint(dict_uint64(msg, "id"), ==, first + i);
		g_assert_cmpstr(dict_string(msg, "room"), ==, "general");
		g_assert_cmpstr(dict_string(msg, "text"), ==, text);
		g_assert_cmpstr(dict_string(msg, "kind"), ==, "text");
		assert_ts(dict_string(msg, "ts"));
	}
}

static void
test_get_history(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	g_autoptr(GVariant) page = NULL;

	ws_join(alice, "general");
	for (guint i = 1; i <= 60; i++) {
		g_autofree gchar *text = g_strdup_printf("m%u", i);
		if (i % 2 == 0) {
			g_assert_cmpuint(send_message(fx, "general", text, NULL), ==, i);
		} else {
			g_autoptr(JsonObject) msg = ws_say(alice, "general", text);
			g_assert_cmpint(codechat_test_json_int(msg, "id"), ==, i);
		}
	}

	/* before = 0, limit = 0: the latest 50, oldest first */
	page = get_history(fx, "general", 0, 0);
	assert_page(page, 11, 60);
	{
		g_autoptr(GVariant) first = g_variant_get_child_value(page, 0);
		g_autoptr(GVariant) last = g_variant_get_child_value(page, 49);
		g_assert_cmpstr(dict_string(first, "from"), ==, "alice"); /* 11 is odd */
		g_assert_cmpstr(dict_string(last, "from"), ==, NICK);
	}
	g_clear_pointer(&page, g_variant_unref);

	/* a limit */
	page = get_history(fx, "general", 0, 5);
	assert_page(page, 56, 60);
	g_clear_pointer(&page, g_variant_unref);

	/* before = N: only smaller ids */
	page = get_history(fx, "general", 11, 0);
	assert_page(page, 1, 10);
	g_clear_pointer(&page, g_variant_unref);
	page = get_history(fx, "general", 30, 4);
	assert_page(page, 26, 29);
	g_clear_pointer(&page, g_variant_unref);
	page = get_history(fx, "general", 1, 10);
	g_assert_cmpuint(g_variant_n_children(page), ==, 0);
	g_clear_pointer(&page, g_variant_unref);

	/* the largest limit */
	page = get_history(fx, "general", 0, 500);
	assert_page(page, 1, 60);
	g_clear_pointer(&page, g_variant_unref);

	/* an unknown room has no history */
	page = get_history(fx, "empty", 0, 0);
	g_assert_cmpuint(g_variant_n_children(page), ==, 0);
}

static void
test_get_status(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GVariant) status = NULL;
	const gchar *version;

	ws_join(alice, "general");
	send_message(fx, "dev", "x", NULL);

	reply = daemon_call_ok(fx, "GetStatus", NULL, "(a{sv})");
	status = g_variant_get_child_value(reply, 0);
	version = dict_string(status, "version");
	g_assert_cmpstr(version, !=, "");
	g_assert_cmpstr(dict_string(status, "listen_uri"), ==, fx->daemon->uri);
	g_assert_cmpuint(dict_uint32(status, "connections"), ==, 1);
	g_assert_cmpuint(dict_uint32(status, "rooms"), ==, 2);
	g_assert_cmpuint(dict_uint64(status, "uptime_s"), <, 120);
	g_assert_cmpstr(dict_string(status, "epoch"), !=, "");
	{
		g_autoptr(GVariant) reply2 = NULL;
		g_autoptr(GVariant) status2 = NULL;

		fx_client(fx, "bob");
		reply2 = daemon_call_ok(fx, "GetStatus", NULL, "(a{sv})");
		status2 = g_variant_get_child_value(reply2, 0);
		g_assert_cmpuint(dict_uint32(status2, "connections"), ==, 2);
		g_assert_cmpstr(dict_string(status2, "version"), ==, version);
	}
}

static GVariant *
get_property(Fixture *fx, const gchar *name)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GVariant) reply = bus_call(fx->conn,
					     DBUS_NAME,
					     DBUS_PATH,
					     "org.freedesktop.DBus.Properties",
					     "Get",
					     g_variant_new("(ss)", DBUS_IFACE, name),
					     "(v)",
					     &error);
	GVariant *value = NULL;

	g_assert_no_error(error);
	g_variant_get(reply, "(v)", &value);
	return value;
}

/* waits for a PropertiesChanged that gives Connections = @want */
static void
wait_connections(Fixture *fx, guint32 want)
{
	gint64 deadline = g_get_monotonic_time() + (gint64)T * 1000;

	for (;;) {
		gint64 left = (deadline - g_get_monotonic_time()) / 1000;
		g_autoptr(GVariant) params = NULL;
		g_autoptr(GVariant) changed = NULL;
		guint32 value = G_MAXUINT32;

		if (left <= 0) {
			codechat_test_note("no PropertiesChanged with Connections = %u", want);
			g_assert_not_reached();
		}
		params = wait_signal(fx, "PropertiesChanged", (guint)left);
		g_assert_nonnull(params);
		g_assert_cmpstr(g_variant_get_type_string(params), ==, "(sa{sv}as)");
		changed = g_variant_get_child_value(params, 1);
		if (g_variant_lookup(changed, "Connections", "u", &value) && value == want)
			return;
	}
}

static void
test_properties(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GVariant) version = get_property(fx, "Version");
	g_autoptr(GVariant) uri = get_property(fx, "ListenUri");
	g_autoptr(GVariant) conns = get_property(fx, "Connections");
	g_autoptr(GVariant) reply = daemon_call_ok(fx, "GetStatus", NULL, "(a{sv})");
	g_autoptr(GVariant) status = g_variant_get_child_value(reply, 0);
	CodechatTestWs *alice;

	g_assert_true(g_variant_is_of_type(version, G_VARIANT_TYPE_STRING));
	g_assert_cmpstr(g_variant_get_string(version, NULL), ==, dict_string(status, "version"));
	g_assert_true(g_variant_is_of_type(uri, G_VARIANT_TYPE_STRING));
	g_assert_cmpstr(g_variant_get_string(uri, NULL), ==, fx->daemon->uri);
	g_assert_true(g_variant_is_of_type(conns, G_VARIANT_TYPE_UINT32));
	g_assert_cmpuint(g_variant_get_uint32(conns), ==, 0);
	g_clear_pointer(&conns, g_variant_unref);

	/* a WebSocket connection counts from the upgrade on */
	alice = codechat_test_ws_connect_simple(fx->daemon->uri);
	g_ptr_array_add(fx->clients, alice);
	wait_connections(fx, 1);
	conns = get_property(fx, "Connections");
	g_assert_cmpuint(g_variant_get_uint32(conns), ==, 1);
	g_clear_pointer(&conns, g_variant_unref);

	fx_client(fx, "bob");
	wait_connections(fx, 2);

	/* and goes down when one closes */
	g_ptr_array_remove_index(fx->clients, 0);
	wait_connections(fx, 1);
	conns = get_property(fx, "Connections");
	g_assert_cmpuint(g_variant_get_uint32(conns), ==, 1);
}

static void
assert_member_signal(GVariant *params, const gchar *room, const gchar *nick)
{
	const gchar *r = NULL, *n = NULL;

	g_assert_nonnull(params);
	g_assert_cmpstr(g_variant_get_type_string(params), ==, "(ss)");
	g_variant_get(params, "(&s&s)", &r, &n);
	g_assert_cmpstr(r, ==, room);
	g_assert_cmpstr(n, ==, nick);
}

static void
test_members_signals(Fixture *fx, gconstpointer user_data)
{
	CodechatTestWs *alice = fx_client(fx, "alice");
	CodechatTestWs *bob = fx_client(fx, "bob");
	g_autoptr(GVariant) p1 = NULL;
	g_autoptr(GVariant) p2 = NULL;
	g_autoptr(GVariant) p3 = NULL;
	g_autoptr(GVariant) p4 = NULL;
	g_autoptr(GVariant) p5 = NULL;

	ws_join(alice, "general");
	p1 = wait_signal(fx, "MemberJoined", T);
	assert_member_signal(p1, "general", "alice");
	ws_join(bob, "general");
	p2 = wait_signal(fx, "MemberJoined", T);
	assert_member_signal(p2, "general", "bob");
	ws_join(bob, "dev");
	p3 = wait_signal(fx, "MemberJoined", T);
	assert_member_signal(p3, "dev", "bob");

	/* part */
	codechat_test_ws_send_text(alice, "{\"type\":\"part\",\"room\":\"general\"}");
	{
		g_autoptr(JsonObject) parted = ws_expect_own(alice, "parted");
		(void)parted;
	}
	p4 = wait_signal(fx, "MemberLeft", T);
	assert_member_signal(p4, "general", "alice");

	/* quit: bob's connection goes, he leaves both rooms */
	g_ptr_array_remove(fx->clients, bob);
	p5 = wait_signal(fx, "MemberLeft", T);
	g_assert_nonnull(p5);
	{
		g_autoptr(GVariant) p6 = wait_signal(fx, "MemberLeft", T);
		const gchar *r5 = NULL, *r6 = NULL, *n5 = NULL, *n6 = NULL;

		g_assert_nonnull(p6);
		g_variant_get(p5, "(&s&s)", &r5, &n5);
		g_variant_get(p6, "(&s&s)", &r6, &n6);
		g_assert_cmpstr(n5, ==, "bob");
		g_assert_cmpstr(n6, ==, "bob");
		g_assert_true((g_str_equal(r5, "general") && g_str_equal(r6, "dev")) ||
			      (g_str_equal(r5, "dev") && g_str_equal(r6, "general")));
	}

	/* nothing more: no duplicates */
	sync_daemon(fx);
	pump_for(200);
	g_assert_cmpuint(count_signals(fx, "MemberJoined"), ==, 0);
	g_assert_cmpuint(count_signals(fx, "MemberLeft"), ==, 0);
}

static void
test_errors(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *huge = g_strnfill(65537, 'x');
	g_autofree gchar *max = g_strnfill(65536, 'x');
	g_auto(GVariantDict) bad_from = G_VARIANT_DICT_INIT(NULL);
	g_auto(GVariantDict) bad_kind = G_VARIANT_DICT_INIT(NULL);
	g_autoptr(GVariant) page = NULL;

	/* bad rooms */
	assert_call_error(
	    fx,
	    "Send",
	    g_variant_new("(ss@a{sv})", "Bad Room", "hi", g_variant_new("a{sv}", NULL)),
	    "BadRoom");
	assert_call_error(fx,
			  "Send",
			  g_variant_new("(ss@a{sv})", "", "hi", g_variant_new("a{sv}", NULL)),
			  "BadRoom");
	assert_call_error(fx, "ListMembers", g_variant_new("(s)", "#nope"), "BadRoom");
	assert_call_error(fx, "GetHistory", g_variant_new("(stu)", "UPPER", 0, 10), "BadRoom");

	/* too long: one byte over; the limit itself passes */
	assert_call_error(
	    fx,
	    "Send",
	    g_variant_new("(ss@a{sv})", "general", huge, g_variant_new("a{sv}", NULL)),
	    "TooLong");
	g_assert_cmpuint(send_message(fx, "general", max, NULL), ==, 1);

	/* a bad "from" is an error, not a fallback */
	g_variant_dict_insert(&bad_from, "from", "s", "9x");
	assert_call_error(
	    fx,
	    "Send",
	    g_variant_new("(ss@a{sv})", "general", "hi", g_variant_dict_end(&bad_from)),
	    "BadNick");

	/* bad requests */
	g_variant_dict_insert(&bad_kind, "kind", "s", "shout");
	assert_call_error(
	    fx,
	    "Send",
	    g_variant_new("(ss@a{sv})", "general", "hi", g_variant_dict_end(&bad_kind)),
	    "BadRequest");
	assert_call_error(fx,
			  "GetHistory",
			  g_variant_new("(stu)", "general", 0, 501),
			  "BadRequest");

	/* nothing of that was stored, and the daemon still serves */
	page = get_history(fx, "general", 0, 0);
	g_assert_cmpuint(g_variant_n_children(page), ==, 1);
	g_assert_cmpuint(send_message(fx, "general", "still here", NULL), ==, 2);
}

static void
test_rate_limited(Fixture *fx, gconstpointer user_data)
{
	guint ok = 0, limited = 0;

	/* --rate-limit 1 --rate-burst 2: a burst of 2, then at most 1 a
	 * second; 6 quick calls cannot all pass */
	for (guint i = 0; i < 6; i++) {
		g_autoptr(GError) error = NULL;
		g_autoptr(GVariant) reply = daemon_call(
		    fx,
		    "Send",
		    g_variant_new("(ss@a{sv})", "general", "spam", g_variant_new("a{sv}", NULL)),
		    "(t)",
		    &error);
		if (reply != NULL) {
			ok++;
		} else {
			g_autofree gchar *remote = g_dbus_error_get_remote_error(error);
			g_assert_cmpstr(remote, ==, ERR_PREFIX "RateLimited");
			limited++;
		}
	}
	codechat_test_note("%u sent, %u rate-limited", ok, limited);
	g_assert_cmpuint(ok, >=, 2);
	g_assert_cmpuint(ok, <=, 3);
	g_assert_cmpuint(limited, >=, 3);

	/* the bucket refills: one more after a little over a second */
	pump_for(1200);
	g_assert_cmpuint(send_message(fx, "general", "later", NULL), ==, ok + 1);
}

/* two daemons, one name */

static void
die_with_parent(gpointer user_data)
{
	prctl(PR_SET_PDEATHSIG, SIGKILL);
}

typedef struct {
	gboolean done;
	gchar *out; /* (owned) */
	gchar *err; /* (owned) */
	GError *error;
} Communicate;

static void
communicate_cb(GObject *source, GAsyncResult *res, gpointer user_data)
{
	Communicate *c = user_data;

	g_subprocess_communicate_utf8_finish(G_SUBPROCESS(source),
					     res,
					     &c->out,
					     &c->err,
					     &c->error);
	c->done = TRUE;
}

/* runs a codechatd that must fail to take the name: its stderr */
static gchar *
run_second_daemon(gint *status)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(GSubprocessLauncher) launcher = NULL;
	g_autoptr(GSubprocess) proc = NULL;
	g_autofree gchar *dir = g_dir_make_tmp("codechat-test-XXXXXX", &error);
	Communicate c = {0};
	const gchar *argv[] = {codechat_test_daemon_path(),
			       "--listen",
			       "127.0.0.1:0",
			       "--data-dir",
			       dir,
			       "--bus",
			       "session",
			       "--notify",
			       "off",
			       NULL};

	g_assert_no_error(error);
	launcher = g_subprocess_launcher_new(G_SUBPROCESS_FLAGS_STDOUT_PIPE |
					     G_SUBPROCESS_FLAGS_STDERR_PIPE);
	g_subprocess_launcher_set_child_setup(launcher, die_with_parent, NULL, NULL);
	{
		g_auto(GStrv) env = g_get_environ();
		for (guint i = 0; env[i] != NULL; i++) {
			if (g_str_has_prefix(env[i], "CODECHATD_")) {
				g_autofree gchar *name = g_strndup(env[i], strcspn(env[i], "="));
				g_subprocess_launcher_unsetenv(launcher, name);
			}
		}
	}
	g_subprocess_launcher_setenv(launcher, "XDG_CONFIG_HOME", dir, TRUE);
	proc = g_subprocess_launcher_spawnv(launcher, argv, &error);
	g_assert_no_error(error);
	g_subprocess_communicate_utf8_async(proc, NULL, NULL, communicate_cb, &c);
	if (!codechat_test_pump_flag(&c.done, 10000)) {
		codechat_test_note("the second codechatd did not exit within 10 s");
		g_subprocess_force_exit(proc);
		codechat_test_pump_flag(&c.done, T);
		*status = -1;
	} else if (g_subprocess_get_if_exited(proc)) {
		*status = g_subprocess_get_exit_status(proc);
	} else {
		*status = -1;
	}
	g_assert_no_error(c.error);
	codechat_test_note("second codechatd: status %d, stdout \"%s\"", *status, c.out);
	g_free(c.out);
	codechat_test_rm_rf(dir);
	return c.err;
}

static void
test_name_race(Fixture *fx, gconstpointer user_data)
{
	g_autofree gchar *owner1 = name_owner(fx->conn, DBUS_NAME);
	g_autofree gchar *err = NULL;
	g_autoptr(CodechatTestDaemon) third = NULL;
	static const gchar *const replace[] = {"--replace", NULL};
	gint status = -1;

	g_assert_nonnull(owner1);

	/* a second daemon finds the name taken and exits 1 */
	err = run_second_daemon(&status);
	g_assert_nonnull(err);
	if (strstr(err, ALREADY_OWNED) == NULL)
		codechat_test_note("stderr of the second codechatd: %s", err);
	g_assert_nonnull(strstr(err, ALREADY_OWNED));
	g_assert_cmpint(status, ==, 1);

	/* the first one keeps serving */
	{
		g_autofree gchar *owner = name_owner(fx->conn, DBUS_NAME);
		g_autoptr(GVariant) reply = daemon_call_ok(fx, "GetStatus", NULL, "(a{sv})");
		g_autoptr(GVariant) status_dict = g_variant_get_child_value(reply, 0);

		g_assert_cmpstr(owner, ==, owner1);
		g_assert_cmpstr(dict_string(status_dict, "listen_uri"), ==, fx->daemon->uri);
		g_assert_cmpuint(owner_pid(fx->conn, DBUS_NAME),
				 ==,
				 (guint32)daemon_pid(fx->daemon));
	}

	/* a third one with --replace takes over; the first exits 0 */
	third = start_daemon(fx, replace, owner1);
	g_assert_cmpint(wait_exit(fx->daemon->proc, 10000), ==, 0);
	fx->stopped = TRUE;
	{
		g_autoptr(GVariant) reply = daemon_call_ok(fx, "GetStatus", NULL, "(a{sv})");
		g_autoptr(GVariant) status_dict = g_variant_get_child_value(reply, 0);

		g_assert_cmpstr(dict_string(status_dict, "listen_uri"), ==, third->uri);
		g_assert_cmpuint(send_message(fx, "general", "new owner", NULL), ==, 1);
	}
	g_assert_cmpint(codechat_test_daemon_stop(third), ==, 0);
	g_assert_true(wait_name_vanished(fx->conn, T));
}

static void
test_activation(Fixture *fx, gconstpointer user_data)
{
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GVariant) status = NULL;
	const gchar *uri;
	guint32 pid;

	if (services_dir == NULL) {
		g_test_skip("no service dir (CODECHAT_TEST_SERVICES_DIR)");
		return;
	}
	{
		g_autofree gchar *owner = name_owner(fx->conn, DBUS_NAME);
		g_assert_null(owner);
	}

	/* the first call starts the daemon */
	reply = daemon_call_ok(fx, "GetStatus", NULL, "(a{sv})");
	status = g_variant_get_child_value(reply, 0);
	uri = dict_string(status, "listen_uri");
	g_assert_true(g_str_has_prefix(uri, "ws://127.0.0.1:"));
	g_assert_false(g_str_has_prefix(uri, "ws://127.0.0.1:0/"));
	g_assert_true(g_str_has_suffix(uri, "/v1/ws"));
	g_assert_cmpstr(dict_string(status, "nick"), ==, NICK);

	/* it serves WebSocket clients on that URI and keeps its history in
	 * CODECHATD_DATA_DIR */
	{
		g_autoptr(CodechatTestWs) ws = codechat_test_ws_new_client(uri, "alice", NULL);
		g_autoptr(JsonObject) msg = NULL;

		ws_join(ws, "general");
		g_assert_cmpuint(send_message(fx, "general", "activated", NULL), ==, 1);
		msg = codechat_test_ws_expect(ws, "message");
		g_assert_cmpstr(codechat_test_json_string(msg, "text"), ==, "activated");
	}
	{
		g_autoptr(GDir) dir = g_dir_open(fx->act_dir, 0, NULL);
		g_assert_nonnull(dir);
		g_assert_nonnull(g_dir_read_name(dir));
	}

	/* stop it */
	pid = owner_pid(fx->conn, DBUS_NAME);
	g_assert_cmpuint(pid, >, 1);
	g_assert_cmpint(kill((pid_t)pid, SIGTERM), ==, 0);
	if (!wait_name_vanished(fx->conn, 10000)) {
		codechat_test_note("the activated codechatd (pid %u) did not go", pid);
		kill((pid_t)pid, SIGKILL);
		g_assert_not_reached();
	}
}

#define ADD(path, c, func)                                                                         \
	g_test_add("/codechat/dbus/" path, Fixture, c, fixture_setup, func, fixture_teardown)

int
main(int argc, char *argv[])
{
	int ret;

	g_test_init(&argc, &argv, NULL);

	if (g_getenv("CODECHAT_TEST_SERVICES_DIR") != NULL)
		services_dir =
		    g_canonicalize_filename(g_getenv("CODECHAT_TEST_SERVICES_DIR"), NULL);
	else if (argc > 1)
		services_dir = g_canonicalize_filename(argv[1], NULL);

	ADD("send", &case_default, test_send);
	ADD("message-posted/ws", &case_default, test_message_posted_ws);
	ADD("message-posted/send", &case_default, test_message_posted_send);
	ADD("list-rooms", &case_default, test_list_rooms);
	ADD("list-members", &case_default, test_list_members);
	ADD("get-history", &case_no_rate, test_get_history);
	ADD("get-status", &case_default, test_get_status);
	ADD("properties", &case_default, test_properties);
	ADD("member-signals", &case_default, test_members_signals);
	ADD("errors", &case_default, test_errors);
	ADD("rate-limited", &case_rate, test_rate_limited);
	ADD("name-race", &case_default, test_name_race);
	ADD("activation", &case_activation, test_activation);
	ret = g_test_run();
	g_free(services_dir);
	return ret;
}
