/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-test"

#include "config.h"

#include "codechat-test-notifications.h"

#define FAKE_NAME     "org.freedesktop.Notifications"
#define FAKE_PATH     "/org/freedesktop/Notifications"
#define START_TIMEOUT 5000 /* ms for the bus to give the fake its name */

static const gchar fake_xml[] =
    "<node>"
    "  <interface name='org.freedesktop.Notifications'>"
    "    <method name='Notify'>"
    "      <arg type='s' direction='in'/><arg type='u' direction='in'/>"
    "      <arg type='s' direction='in'/><arg type='s' direction='in'/>"
    "      <arg type='s' direction='in'/><arg type='as' direction='in'/>"
    "      <arg type='a{sv}' direction='in'/><arg type='i' direction='in'/>"
    "      <arg type='u' direction='out'/>"
    "    </method>"
    "    <method name='GetCapabilities'><arg type='as' direction='out'/></method>"
    "    <method name='GetServerInformation'>"
    "      <arg type='s' direction='out'/><arg type='s' direction='out'/>"
    "      <arg type='s' direction='out'/><arg type='s' direction='out'/>"
    "    </method>"
    "    <method name='CloseNotification'><arg type='u' direction='in'/></method>"
    "    <signal name='NotificationClosed'>"
    "      <arg type='u'/><arg type='u'/>"
    "    </signal>"
    "  </interface>"
    "</node>";

static void
notify_call_free(CodechatTestNotifyCall *call)
{
	g_free(call->app_name);
	g_free(call->summary);
	g_free(call->body);
	g_variant_unref(call->hints);
	g_free(call);
}

struct _CodechatTestNotifications {
	gchar *address;	      /* (owned) */
	gboolean markup;      /* claims body-markup */
	gboolean fail;	      /* Notify answers an error */
	GThread *thread;      /* (owned) */
	GMainContext *ctx;    /* (owned) the thread's */
	GMainLoop *loop;      /* (owned) */
	GMainContext *waiter; /* (owned) the starter's, woken at each Notify */
	GMutex lock;	      /* guards what follows */
	GCond cond;	      /* signalled when started */
	gboolean started;     /* owns the name, or failed to */
	GPtrArray *calls;     /* (owned) (element-type CodechatTestNotifyCall) */
	guint n_other_calls;  /* GetCapabilities, GetServerInformation, CloseNotification */
	guint next_id;
};

static void
fake_method_call_locked(CodechatTestNotifications *fake,
			const gchar *method_name,
			GVariant *parameters,
			GDBusMethodInvocation *invocation);

static void
fake_method_call(GDBusConnection *connection,
		 const gchar *sender,
		 const gchar *object_path,
		 const gchar *interface_name,
		 const gchar *method_name,
		 GVariant *parameters,
		 GDBusMethodInvocation *invocation,
		 gpointer user_data)
{
	CodechatTestNotifications *fake = user_data;

	g_mutex_lock(&fake->lock);
	fake_method_call_locked(fake, method_name, parameters, invocation);
	g_mutex_unlock(&fake->lock);
	/* whoever waits for calls looks again */
	g_main_context_wakeup(fake->waiter);
}

static void
fake_method_call_locked(CodechatTestNotifications *fake,
			const gchar *method_name,
			GVariant *parameters,
			GDBusMethodInvocation *invocation)
{
	if (g_strcmp0(method_name, "Notify") == 0) {
		CodechatTestNotifyCall *call = g_new0(CodechatTestNotifyCall, 1);
		g_autoptr(GVariant) actions = NULL;
		g_autofree gchar *icon = NULL;
		gint timeout;

		if (fake->fail) {
			g_dbus_method_invocation_return_dbus_error(
			    invocation,
			    "org.freedesktop.DBus.Error.Failed",
			    "the fake fails on purpose");
			g_free(call);
			return;
		}
		g_variant_get(parameters,
			      "(susss@as@a{sv}i)",
			      &call->app_name,
			      &call->replaces_id,
			      &icon,
			      &call->summary,
			      &call->body,
			      &actions,
			      &call->hints,
			      &timeout);
		call->id = call->replaces_id != 0 ? call->replaces_id : ++fake->next_id;
		g_ptr_array_add(fake->calls, call);
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(u)", call->id));
		return;
	}
	fake->n_other_calls++;
	if (g_strcmp0(method_name, "GetCapabilities") == 0) {
		const gchar *caps[] = {"body", "persistence", NULL, NULL};

		if (fake->markup)
			caps[2] = "body-markup";
		g_dbus_method_invocation_return_value(invocation,
						      g_variant_new("(^as)", (gchar **)caps));
	} else if (g_strcmp0(method_name, "GetServerInformation") == 0) {
		g_dbus_method_invocation_return_value(
		    invocation,
		    g_variant_new("(ssss)", "fake", "codechat tests", "1.0", "1.2"));
	} else {
		g_dbus_method_invocation_return_value(invocation, NULL);
	}
}

static const GDBusInterfaceVTable fake_vtable = {fake_method_call, NULL, NULL, {NULL}};

static gpointer
fake_thread(gpointer user_data)
{
	CodechatTestNotifications *fake = user_data;
	g_autoptr(GDBusNodeInfo) info = g_dbus_node_info_new_for_xml(fake_xml, NULL);
	g_autoptr(GDBusConnection) conn = NULL;
	g_autoptr(GVariant) reply = NULL;
	g_autoptr(GError) error = NULL;
	guint reg_id = 0;

	g_main_context_push_thread_default(fake->ctx);
	conn = g_dbus_connection_new_for_address_sync(
	    fake->address,
	    G_DBUS_CONNECTION_FLAGS_AUTHENTICATION_CLIENT |
		G_DBUS_CONNECTION_FLAGS_MESSAGE_BUS_CONNECTION,
	    NULL,
	    NULL,
	    &error);
	g_assert_no_error(error);
	if (conn != NULL) {
		reg_id = g_dbus_connection_register_object(conn,
							   FAKE_PATH,
							   info->interfaces[0],
							   &fake_vtable,
							   fake,
							   NULL,
							   &error);
		g_assert_no_error(error);
		reply = g_dbus_connection_call_sync(conn,
						    "org.freedesktop.DBus",
						    "/org/freedesktop/DBus",
						    "org.freedesktop.DBus",
						    "RequestName",
						    g_variant_new("(su)", FAKE_NAME, 4u),
						    G_VARIANT_TYPE("(u)"),
						    G_DBUS_CALL_FLAGS_NONE,
						    START_TIMEOUT,
						    NULL,
						    &error);
		g_assert_no_error(error);
	}

	g_mutex_lock(&fake->lock);
	fake->started = TRUE;
	g_cond_signal(&fake->cond);
	g_mutex_unlock(&fake->lock);

	if (reply != NULL)
		g_main_loop_run(fake->loop);

	if (reg_id != 0)
		g_dbus_connection_unregister_object(conn, reg_id);
	if (conn != NULL)
		g_dbus_connection_close_sync(conn, NULL, NULL);
	g_main_context_pop_thread_default(fake->ctx);
	return NULL;
}

CodechatTestNotifications *
codechat_test_notifications_start(GTestDBus *bus, gboolean markup, gboolean fail)
{
	CodechatTestNotifications *fake = g_new0(CodechatTestNotifications, 1);

	fake->address = g_strdup(g_test_dbus_get_bus_address(bus));
	fake->markup = markup;
	fake->fail = fail;
	fake->ctx = g_main_context_new();
	fake->loop = g_main_loop_new(fake->ctx, FALSE);
	fake->waiter = g_main_context_ref_thread_default();
	fake->calls = g_ptr_array_new_with_free_func((GDestroyNotify)notify_call_free);
	g_mutex_init(&fake->lock);
	g_cond_init(&fake->cond);
	fake->thread = g_thread_new("fake-notifications", fake_thread, fake);
	g_mutex_lock(&fake->lock);
	while (!fake->started)
		g_cond_wait(&fake->cond, &fake->lock);
	g_mutex_unlock(&fake->lock);
	return fake;
}

static gboolean
quit_cb(gpointer user_data)
{
	g_main_loop_quit(user_data);
	return G_SOURCE_REMOVE;
}

void
codechat_test_notifications_stop(CodechatTestNotifications *fake)
{
	g_main_context_invoke(fake->ctx, quit_cb, fake->loop);
	g_thread_join(fake->thread);
	g_main_loop_unref(fake->loop);
	g_main_context_unref(fake->ctx);
	g_main_context_unref(fake->waiter);
	g_ptr_array_unref(fake->calls);
	g_mutex_clear(&fake->lock);
	g_cond_clear(&fake->cond);
	g_free(fake->address);
	g_free(fake);
}

guint
codechat_test_notifications_n_calls(CodechatTestNotifications *fake)
{
	guint n;

	g_mutex_lock(&fake->lock);
	n = fake->calls->len;
	g_mutex_unlock(&fake->lock);
	return n;
}

guint
codechat_test_notifications_n_other_calls(CodechatTestNotifications *fake)
{
	guint n;

	g_mutex_lock(&fake->lock);
	n = fake->n_other_calls;
	g_mutex_unlock(&fake->lock);
	return n;
}

CodechatTestNotifyCall *
codechat_test_notifications_call(CodechatTestNotifications *fake, guint i)
{
	CodechatTestNotifyCall *call = NULL;

	g_mutex_lock(&fake->lock);
	g_assert_cmpuint(i, <, fake->calls->len);
	if (i < fake->calls->len)
		call = g_ptr_array_index(fake->calls, i);
	g_mutex_unlock(&fake->lock);
	g_assert_nonnull(call);
	return call;
}

static gboolean
timeout_cb(gpointer user_data)
{
	gboolean *expired = user_data;

	*expired = TRUE;
	return G_SOURCE_REMOVE;
}

guint
codechat_test_notifications_wait(CodechatTestNotifications *fake, guint n, guint ms)
{
	gboolean expired = FALSE;
	guint id = g_timeout_add(ms, timeout_cb, &expired);

	while (codechat_test_notifications_n_calls(fake) < n && !expired)
		g_main_context_iteration(NULL, TRUE);
	if (!expired)
		g_source_remove(id);
	return codechat_test_notifications_n_calls(fake);
}

const gchar *
codechat_test_notify_hint_string(GVariant *hints, const gchar *key)
{
	const gchar *value = NULL;

	if (!g_variant_lookup(hints, key, "&s", &value))
		return NULL;
	return value;
}
