/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechatd"

#include "config.h"

#include "codechat-dbus.h"
#include "codechat-version.h"

/*
 * io.github.codechat.Codechat.Daemon1 over the hub: Send goes through
 * codechat_hub_post(), the same checks, store and fan-out as a WebSocket
 * say; the hub's signals become D-Bus signals.  Errors are CODECHAT_ERROR,
 * which is registered with D-Bus, so callers see named errors.
 */
struct _CodechatDbusService {
	CodechatDbusDaemon1Skeleton parent_instance;
	CodechatHub *hub; /* (owned) */
	gchar *nick;	  /* (owned) the default sender of Send */
	gint64 started_us;
};

static void
codechat_dbus_service_iface_init(CodechatDbusDaemon1Iface *iface);

G_DEFINE_FINAL_TYPE_WITH_CODE(CodechatDbusService,
			      codechat_dbus_service,
			      CODECHAT_DBUS_TYPE_DAEMON1_SKELETON,
			      G_IMPLEMENT_INTERFACE(CODECHAT_DBUS_TYPE_DAEMON1,
						    codechat_dbus_service_iface_init))

/**
 * codechat_dbus_message_to_variant:
 *
 * Returns: (transfer floating): the a{sv} of a message, with the keys of
 * the protocol's message object
 */
GVariant *
codechat_dbus_message_to_variant(const CodechatMessage *msg)
{
	g_auto(GVariantBuilder) builder = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);
	g_autofree gchar *ts = codechat_timestamp_format(msg->ts);

	if (msg->room != NULL)
		g_variant_builder_add(&builder, "{sv}", "room", g_variant_new_string(msg->room));
	if (msg->to != NULL)
		g_variant_builder_add(&builder, "{sv}", "to", g_variant_new_string(msg->to));
	g_variant_builder_add(&builder, "{sv}", "id", g_variant_new_uint64(msg->id));
	g_variant_builder_add(&builder, "{sv}", "from", g_variant_new_string(msg->from));
	g_variant_builder_add(&builder, "{sv}", "ts", g_variant_new_string(ts));
	g_variant_builder_add(&builder,
			      "{sv}",
			      "kind",
			      g_variant_new_string(codechat_kind_to_string(msg->kind)));
	g_variant_builder_add(&builder, "{sv}", "text", g_variant_new_string(msg->text));
	if (msg->lang != NULL)
		g_variant_builder_add(&builder, "{sv}", "lang", g_variant_new_string(msg->lang));
	if (msg->filename != NULL)
		g_variant_builder_add(&builder,
				      "{sv}",
				      "filename",
				      g_variant_new_string(msg->filename));
	return g_variant_builder_end(&builder);
}

static void
send_done_cb(CodechatMessage *msg, const GError *error, gpointer user_data)
{
	GDBusMethodInvocation *invocation = user_data;

	if (error != NULL)
		g_dbus_method_invocation_return_gerror(invocation, error);
	else
		g_dbus_method_invocation_return_value(invocation, g_variant_new("(t)", msg->id));
	g_object_unref(invocation);
}

static gboolean
option_string(GVariantDict *dict, const gchar *key, gchar **out, GError **error)
{
	GVariant *value = g_variant_dict_lookup_value(dict, key, NULL);

	if (value == NULL)
		return TRUE;
	if (!g_variant_is_of_type(value, G_VARIANT_TYPE_STRING)) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_BAD_REQUEST,
			    "option \"%s\" must be a string",
			    key);
		g_variant_unref(value);
		return FALSE;
	}
	*out = g_variant_dup_string(value, NULL);
	g_variant_unref(value);
	return TRUE;
}

static gboolean
handle_send(CodechatDbusDaemon1 *object,
	    GDBusMethodInvocation *invocation,
	    const gchar *room,
	    const gchar *text,
	    GVariant *options)
{
	CodechatDbusService *self = CODECHAT_DBUS_SERVICE(object);
	g_autoptr(CodechatMessage) msg = codechat_message_new();
	g_autoptr(GError) error = NULL;
	g_autofree gchar *kind = NULL;
	g_auto(GVariantDict) dict;

	g_variant_dict_init(&dict, options);
	msg->room = g_strdup(room);
	msg->text = g_strdup(text);
	if (!option_string(&dict, "kind", &kind, &error) ||
	    !option_string(&dict, "lang", &msg->lang, &error) ||
	    !option_string(&dict, "filename", &msg->filename, &error) ||
	    !option_string(&dict, "from", &msg->from, &error)) {
		g_dbus_method_invocation_return_gerror(invocation, error);
		return TRUE;
	}
	if (kind != NULL && !codechat_kind_from_string(kind, &msg->kind)) {
		g_dbus_method_invocation_return_error_literal(
		    invocation,
		    CODECHAT_ERROR,
		    CODECHAT_ERROR_BAD_REQUEST,
		    "kind must be \"text\", \"code\" or \"action\"");
		return TRUE;
	}
	/* an invalid "from" is an error, not a silent fallback */
	if (msg->from == NULL)
		msg->from = g_strdup(self->nick);
	if (!codechat_hub_post(self->hub, msg, send_done_cb, g_object_ref(invocation), &error)) {
		g_object_unref(invocation);
		g_dbus_method_invocation_return_gerror(invocation, error);
	}
	return TRUE;
}

static gboolean
handle_list_rooms(CodechatDbusDaemon1 *object, GDBusMethodInvocation *invocation)
{
	CodechatDbusService *self = CODECHAT_DBUS_SERVICE(object);
	g_autoptr(GPtrArray) rooms = codechat_hub_list_rooms(self->hub);
	g_auto(GVariantBuilder) builder = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE("aa{sv}"));

	for (guint i = 0; i < rooms->len; i++) {
		CodechatRoomInfo *info = g_ptr_array_index(rooms, i);
		g_variant_builder_open(&builder, G_VARIANT_TYPE_VARDICT);
		g_variant_builder_add(&builder, "{sv}", "name", g_variant_new_string(info->name));
		g_variant_builder_add(&builder,
				      "{sv}",
				      "members",
				      g_variant_new_uint32(info->members));
		g_variant_builder_add(&builder,
				      "{sv}",
				      "last_id",
				      g_variant_new_uint64(info->last_id));
		g_variant_builder_add(&builder, "{sv}", "topic", g_variant_new_string(""));
		g_variant_builder_close(&builder);
	}
	codechat_dbus_daemon1_complete_list_rooms(object,
						  invocation,
						  g_variant_builder_end(&builder));
	return TRUE;
}

static gboolean
handle_list_members(CodechatDbusDaemon1 *object,
		    GDBusMethodInvocation *invocation,
		    const gchar *room)
{
	CodechatDbusService *self = CODECHAT_DBUS_SERVICE(object);
	g_autoptr(GError) error = NULL;
	g_auto(GStrv) members = codechat_hub_list_members(self->hub, room, &error);

	if (members == NULL) {
		g_dbus_method_invocation_return_gerror(invocation, error);
		return TRUE;
	}
	codechat_dbus_daemon1_complete_list_members(object,
						    invocation,
						    (const gchar *const *)members);
	return TRUE;
}

static void
get_history_done_cb(GPtrArray *page, const GError *error, gpointer user_data)
{
	GDBusMethodInvocation *invocation = user_data;
	g_auto(GVariantBuilder) builder = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE("aa{sv}"));

	if (page == NULL) {
		g_dbus_method_invocation_return_gerror(invocation, error);
		g_object_unref(invocation);
		return;
	}
	for (guint i = 0; i < page->len; i++)
		g_variant_builder_add_value(
		    &builder,
		    codechat_dbus_message_to_variant(g_ptr_array_index(page, i)));
	g_dbus_method_invocation_return_value(invocation, g_variant_new("(aa{sv})", &builder));
	g_object_unref(invocation);
}

/* the store may answer later (a network store): the invocation waits */
static gboolean
handle_get_history(CodechatDbusDaemon1 *object,
		   GDBusMethodInvocation *invocation,
		   const gchar *room,
		   guint64 before,
		   guint limit)
{
	CodechatDbusService *self = CODECHAT_DBUS_SERVICE(object);

	codechat_hub_get_history_async(self->hub,
				       room,
				       before,
				       limit,
				       get_history_done_cb,
				       g_object_ref(invocation));
	return TRUE;
}

static gboolean
handle_get_status(CodechatDbusDaemon1 *object, GDBusMethodInvocation *invocation)
{
	CodechatDbusService *self = CODECHAT_DBUS_SERVICE(object);
	g_auto(GVariantBuilder) builder = G_VARIANT_BUILDER_INIT(G_VARIANT_TYPE_VARDICT);
	g_autoptr(GPtrArray) rooms = codechat_hub_list_rooms(self->hub);

	g_variant_builder_add(&builder,
			      "{sv}",
			      "version",
			      g_variant_new_string(codechat_version()));
	g_variant_builder_add(&builder,
			      "{sv}",
			      "listen_uri",
			      g_variant_new_string(codechat_dbus_daemon1_get_listen_uri(object)));
	g_variant_builder_add(&builder,
			      "{sv}",
			      "connections",
			      g_variant_new_uint32(codechat_hub_get_n_connections(self->hub)));
	g_variant_builder_add(&builder, "{sv}", "rooms", g_variant_new_uint32(rooms->len));
	g_variant_builder_add(
	    &builder,
	    "{sv}",
	    "uptime_s",
	    g_variant_new_uint64(
		(guint64)((g_get_monotonic_time() - self->started_us) / G_USEC_PER_SEC)));
	g_variant_builder_add(&builder,
			      "{sv}",
			      "epoch",
			      g_variant_new_string(codechat_hub_get_epoch(self->hub)));
	g_variant_builder_add(&builder, "{sv}", "nick", g_variant_new_string(self->nick));
	codechat_dbus_daemon1_complete_get_status(object,
						  invocation,
						  g_variant_builder_end(&builder));
	return TRUE;
}

static void
message_posted_cb(CodechatHub *hub, gpointer msg, gpointer user_data)
{
	codechat_dbus_daemon1_emit_message_posted(CODECHAT_DBUS_DAEMON1(user_data),
						  codechat_dbus_message_to_variant(msg));
}

static void
member_joined_cb(CodechatHub *hub, const gchar *room, const gchar *nick, gpointer user_data)
{
	codechat_dbus_daemon1_emit_member_joined(CODECHAT_DBUS_DAEMON1(user_data), room, nick);
}

static void
member_left_cb(CodechatHub *hub, const gchar *room, const gchar *nick, gpointer user_data)
{
	codechat_dbus_daemon1_emit_member_left(CODECHAT_DBUS_DAEMON1(user_data), room, nick);
}

static void
connections_changed_cb(CodechatHub *hub, gpointer user_data)
{
	codechat_dbus_daemon1_set_connections(CODECHAT_DBUS_DAEMON1(user_data),
					      codechat_hub_get_n_connections(hub));
}

static void
codechat_dbus_service_iface_init(CodechatDbusDaemon1Iface *iface)
{
	iface->handle_send = handle_send;
	iface->handle_list_rooms = handle_list_rooms;
	iface->handle_list_members = handle_list_members;
	iface->handle_get_history = handle_get_history;
	iface->handle_get_status = handle_get_status;
}

static void
codechat_dbus_service_finalize(GObject *object)
{
	CodechatDbusService *self = CODECHAT_DBUS_SERVICE(object);

	g_clear_object(&self->hub);
	g_free(self->nick);
	G_OBJECT_CLASS(codechat_dbus_service_parent_class)->finalize(object);
}

static void
codechat_dbus_service_class_init(CodechatDbusServiceClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);
	object_class->finalize = codechat_dbus_service_finalize;
}

static void
codechat_dbus_service_init(CodechatDbusService *self)
{
	self->started_us = g_get_monotonic_time();
}

/**
 * codechat_dbus_service_new:
 * @nick: the sender of Send when the caller names none
 *
 * The object to export at %CODECHAT_DBUS_PATH.
 */
CodechatDbusService *
codechat_dbus_service_new(CodechatHub *hub, const gchar *listen_uri, const gchar *nick)
{
	CodechatDbusService *self = g_object_new(CODECHAT_TYPE_DBUS_SERVICE, NULL);

	self->hub = g_object_ref(hub);
	self->nick = g_strdup(nick);
	codechat_dbus_daemon1_set_version(CODECHAT_DBUS_DAEMON1(self), codechat_version());
	codechat_dbus_daemon1_set_listen_uri(CODECHAT_DBUS_DAEMON1(self), listen_uri);
	codechat_dbus_daemon1_set_connections(CODECHAT_DBUS_DAEMON1(self),
					      codechat_hub_get_n_connections(hub));
	g_signal_connect_object(hub, "message-posted", G_CALLBACK(message_posted_cb), self, 0);
	g_signal_connect_object(hub, "member-joined", G_CALLBACK(member_joined_cb), self, 0);
	g_signal_connect_object(hub, "member-left", G_CALLBACK(member_left_cb), self, 0);
	g_signal_connect_object(hub,
				"connections-changed",
				G_CALLBACK(connections_changed_cb),
				self,
				0);
	return self;
}

/* at a reload: Send's default sender and GetStatus' nick from then on */
void
codechat_dbus_service_set_nick(CodechatDbusService *self, const gchar *nick)
{
	g_return_if_fail(CODECHAT_IS_DBUS_SERVICE(self));
	g_return_if_fail(nick != NULL);
	g_free(self->nick);
	self->nick = g_strdup(nick);
}
