/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>
#include <libsoup/soup.h>

#include "codechat-cmd.h"
#include "codechat-log.h"
#include "codechat-session.h"

/**
 * CodechatSession:
 *
 * A long-lived presence on the server over as many connections as it
 * takes: what `watch` (and the interactive `chat`) stand on.
 *
 * When a connection drops, or the daemon restarts, the session connects
 * again after a backoff with jitter (1 s doubling to 30 s, ±20 %, so that
 * the clients of a restarted daemon do not all come back in the same
 * instant) and joins each room again with `since` = the last id it
 * delivered there: the server replays what was missed, and when more was
 * missed than one page holds (`joined.truncated`) the session pages the
 * gap forward with `history`.  While a room's replay is not settled,
 * live frames of that room are held back.  Ids already delivered are
 * skipped, so #CodechatSession::message sees every message of a room
 * exactly once, in id order.  Ids belong to one history store: when the
 * `epoch` of `welcome` or `joined` changes, they are dropped and the room
 * is replayed from the start of the new store.
 *
 * What a person should know (connection lost, resumed, …) is emitted as
 * #CodechatSession::notice; a refusal that retrying cannot heal ends the
 * session with #CodechatSession::failed.
 */

#define BACKOFF_MIN_MS 1000
#define BACKOFF_MAX_MS 30000
/* ±20 % */
#define BACKOFF_JITTER	0.2
#define PING_INTERVAL_S 30
#define PING_TIMEOUT_S	15

typedef struct {
	gchar *name;	     /* (owned) */
	guint64 last_id;     /* the newest id delivered, or known at join */
	gboolean positioned; /* last_id is meaningful: resume with since */
	gboolean resuming;   /* holding live frames back */
	gboolean rejoining;  /* held frames answer a join of the old store */
	GQueue held;	     /* (element-type JsonObject) (owned) */
	/* counting what a resume replays, for the notice */
	gboolean counting;
	guint64 replay_until; /* joined's last_id */
	guint missed;
} SessionRoom;

struct _CodechatSession {
	GObject parent_instance;
	gchar *uri;		   /* (owned) */
	gchar *nick;		   /* (owned) */
	gchar *token;		   /* (owned) (nullable) a secret: never logged */
	CodechatConnection *conn;  /* (owned) (nullable) the current connection */
	GCancellable *cancellable; /* (owned) (nullable) its connect */
	GPtrArray *rooms;	   /* (owned) (element-type SessionRoom) */
	gchar *epoch;		   /* (owned) (nullable) the store the ids belong to */
	guint attempt;		   /* reconnects since the last settled session */
	guint reconnect_id;	   /* GSource id, 0 if none */
	guint ping_id;		   /* GSource id, 0 if none */
	guint joins_pending;
	gboolean started;
	gboolean reached;  /* the server answered once: the address is right */
	gboolean finished; /* failed or closed: no more connections */
	gboolean ping_in_flight;
};

G_DEFINE_FINAL_TYPE(CodechatSession, codechat_session, G_TYPE_OBJECT)

enum {
	PROP_0,
	PROP_URI,
	PROP_NICK,
	PROP_TOKEN,
	N_PROPS
};

static GParamSpec *properties[N_PROPS];

enum {
	SIGNAL_MESSAGE,
	SIGNAL_FRAME,
	SIGNAL_NOTICE,
	SIGNAL_READY,
	SIGNAL_FAILED,
	N_SIGNALS
};

static guint signals[N_SIGNALS];

static void
session_room_free(SessionRoom *room)
{
	g_queue_clear_full(&room->held, (GDestroyNotify)json_object_unref);
	g_free(room->name);
	g_free(room);
}

/* a request about one room, made on one connection */
typedef struct {
	CodechatSession *session; /* (owned) */
	gchar *room;		  /* (owned) */
	gchar *epoch;		  /* (owned) (nullable) the store `since` belonged to */
} RoomOp;

static RoomOp *
room_op_new(CodechatSession *self, SessionRoom *room)
{
	RoomOp *op = g_new0(RoomOp, 1);

	op->session = g_object_ref(self);
	op->room = g_strdup(room->name);
	op->epoch = g_strdup(self->epoch);
	return op;
}

static void
room_op_free(RoomOp *op)
{
	g_object_unref(op->session);
	g_free(op->room);
	g_free(op->epoch);
	g_free(op);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(RoomOp, room_op_free)

static void
session_connect(CodechatSession *self);
static void
fill_gap(CodechatSession *self, SessionRoom *room);

static SessionRoom *
find_room(CodechatSession *self, const gchar *name)
{
	for (guint i = 0; i < self->rooms->len; i++) {
		SessionRoom *room = g_ptr_array_index(self->rooms, i);

		if (g_strcmp0(room->name, name) == 0)
			return room;
	}
	return NULL;
}

static void
notice(CodechatSession *self, const gchar *format, ...) G_GNUC_PRINTF(2, 3);

static void
notice(CodechatSession *self, const gchar *format, ...)
{
	va_list args;
	g_autofree gchar *text = NULL;

	va_start(args, format);
	text = g_strdup_vprintf(format, args);
	va_end(args);
	g_signal_emit(self, signals[SIGNAL_NOTICE], 0, text);
}

/* forgets the current connection, which is closed or given up on */
static void
drop_connection(CodechatSession *self)
{
	g_clear_handle_id(&self->ping_id, g_source_remove);
	self->ping_in_flight = FALSE;
	if (self->cancellable != NULL)
		g_cancellable_cancel(self->cancellable);
	g_clear_object(&self->cancellable);
	if (self->conn != NULL)
		g_signal_handlers_disconnect_by_data(self->conn, self);
	g_clear_object(&self->conn);
}

/* ends the session for good: no more connections; takes @error */
static void
session_fail(CodechatSession *self, GError *error)
{
	g_autoptr(GError) owned = error;

	if (self->finished)
		return;
	self->finished = TRUE;
	g_clear_handle_id(&self->reconnect_id, g_source_remove);
	g_clear_handle_id(&self->ping_id, g_source_remove);
	g_debug("giving up: %s", owned->message);
	g_signal_emit(self, signals[SIGNAL_FAILED], 0, owned);
}

static gboolean
reconnect_cb(gpointer user_data)
{
	CodechatSession *self = CODECHAT_SESSION(user_data);

	self->reconnect_id = 0;
	session_connect(self);
	return G_SOURCE_REMOVE;
}

/* the next wait: 1 s doubling to 30 s, each ±20 %, never more than 30 s */
static guint
next_delay_ms(CodechatSession *self)
{
	guint base = BACKOFF_MIN_MS << MIN(self->attempt, 5u);
	gdouble jittered;

	base = MIN(base, BACKOFF_MAX_MS);
	jittered = base * g_random_double_range(1.0 - BACKOFF_JITTER, 1.0 + BACKOFF_JITTER);
	if (self->attempt < G_MAXUINT)
		self->attempt++;
	return (guint)MIN(jittered, (gdouble)BACKOFF_MAX_MS);
}

/* drops the connection and connects again later; returns the delay in
 * whole seconds, for people */
static guint
schedule_reconnect(CodechatSession *self)
{
	guint delay_ms = next_delay_ms(self);

	drop_connection(self);
	g_clear_handle_id(&self->reconnect_id, g_source_remove);
	self->reconnect_id = g_timeout_add(delay_ms, reconnect_cb, self);
	g_debug("reconnecting in %u ms", delay_ms);
	return MAX((delay_ms + 500) / 1000, 1u);
}

static void
note_resumed(CodechatSession *self, SessionRoom *room)
{
	room->counting = FALSE;
	if (room->missed == 0)
		notice(self, _("resumed #%s, no missed messages"), room->name);
	else
		notice(self,
		       g_dngettext(GETTEXT_PACKAGE,
				   "resumed #%s, %u missed message",
				   "resumed #%s, %u missed messages",
				   room->missed),
		       room->name,
		       room->missed);
}

/* emits @message unless its id was delivered already */
static void
deliver(CodechatSession *self, SessionRoom *room, JsonObject *message)
{
	gint64 id = 0;

	if (!codechat_cmd_get_int(message, "id", &id) || id < 1) {
		g_debug("ignoring a message without an id");
		return;
	}
	if (room->positioned && (guint64)id <= room->last_id) {
		codechat_debug(CODECHAT_LOG_FIELDS(.room = room->name, .msgid = id),
			       "skipping message %" G_GINT64_FORMAT " of #%s: already delivered",
			       id,
			       room->name);
		return;
	}
	room->last_id = (guint64)id;
	room->positioned = TRUE;
	g_signal_emit(self, signals[SIGNAL_MESSAGE], 0, message);
	if (room->counting) {
		if ((guint64)id <= room->replay_until)
			room->missed++;
		if (room->last_id >= room->replay_until)
			note_resumed(self, room);
	}
}

static void
flush_held(CodechatSession *self, SessionRoom *room)
{
	JsonObject *message;

	room->resuming = FALSE;
	while ((message = g_queue_pop_head(&room->held)) != NULL) {
		deliver(self, room, message);
		json_object_unref(message);
	}
}

static gboolean
is_connection_error(const GError *error)
{
	return g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_CLOSED) ||
	       g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_TIMED_OUT) ||
	       g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_NOT_CONNECTED) ||
	       g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED);
}

/* a request failed: a dead connection is the reconnect's business, the
 * server's refusal ends the session; takes @error */
static void
request_failed(CodechatSession *self, CodechatConnection *conn, GError *error)
{
	g_autoptr(GError) owned = error;

	if (!is_connection_error(owned)) {
		session_fail(self, g_steal_pointer(&owned));
		return;
	}
	g_debug("request failed: %s", owned->message);
	/* a stuck or overloaded session: close it, and closed_cb reconnects */
	if (!g_error_matches(owned, CODECHAT_ERROR, CODECHAT_ERROR_CLOSED) && conn == self->conn)
		codechat_connection_close_async(conn, NULL, NULL);
}

static void
fill_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(RoomOp) op = user_data;
	CodechatSession *self = op->session;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	SessionRoom *room;
	JsonArray *messages;
	JsonObject *first_held;
	gint64 first_id = 0;
	guint n;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (self->finished || conn != self->conn)
		return;
	room = find_room(self, op->room);
	if (room == NULL)
		return;
	if (reply == NULL) {
		request_failed(self, conn, g_steal_pointer(&error));
		return;
	}
	messages = codechat_cmd_get_array(reply, "messages");
	if (messages == NULL) {
		session_fail(self, codechat_cmd_bad_reply_error(reply, "history"));
		return;
	}
	n = json_array_get_length(messages);
	for (guint i = 0; i < n; i++) {
		JsonNode *node = json_array_get_element(messages, i);

		if (JSON_NODE_HOLDS_OBJECT(node))
			deliver(self, room, json_node_get_object(node));
		if (self->finished || conn != self->conn)
			return;
	}
	first_held = g_queue_peek_head(&room->held);
	if (first_held != NULL)
		codechat_cmd_get_int(first_held, "id", &first_id);
	if (n > 0 && codechat_cmd_get_bool(reply, "more") &&
	    (first_id == 0 || room->last_id + 1 < (guint64)first_id)) {
		fill_gap(self, room);
		return;
	}
	codechat_debug(CODECHAT_LOG_FIELDS(.room = room->name),
		       "#%s: caught up at id %" G_GUINT64_FORMAT,
		       room->name,
		       room->last_id);
	flush_held(self, room);
}

/* the replay was truncated: page forward from the last id delivered */
static void
fill_gap(CodechatSession *self, SessionRoom *room)
{
	g_autoptr(JsonObject) request = codechat_cmd_request_new("history");

	codechat_debug(CODECHAT_LOG_FIELDS(.room = room->name),
		       "#%s: filling the gap after id %" G_GUINT64_FORMAT,
		       room->name,
		       room->last_id);
	json_object_set_string_member(request, "room", room->name);
	json_object_set_int_member(request, "after", (gint64)room->last_id);
	json_object_set_int_member(request, "limit", CODECHAT_MAX_PAGE);
	codechat_connection_request_async(self->conn,
					  request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  fill_cb,
					  room_op_new(self, room));
}

static void
join_room(CodechatSession *self, SessionRoom *room);

/* the ids known belong to another store: resume every room from the
 * start of the new one */
static void
reset_epoch(CodechatSession *self, const gchar *epoch)
{
	notice(self, _("the server's history was reset: starting over"));
	for (guint i = 0; i < self->rooms->len; i++) {
		SessionRoom *room = g_ptr_array_index(self->rooms, i);

		/* a room never joined stays a plain join */
		room->last_id = 0;
	}
	g_free(self->epoch);
	self->epoch = g_strdup(epoch);
}

static void
session_settled(CodechatSession *self)
{
	/* a session that got this far is a success: start the backoff over */
	self->attempt = 0;
	g_debug("following %u rooms", self->rooms->len);
	g_signal_emit(self, signals[SIGNAL_READY], 0);
}

static void
join_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(RoomOp) op = user_data;
	CodechatSession *self = op->session;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	SessionRoom *room;
	const gchar *epoch;
	gint64 last_id = 0;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (self->finished || conn != self->conn)
		return;
	room = find_room(self, op->room);
	if (room == NULL)
		return;
	if (reply == NULL) {
		request_failed(self, conn, g_steal_pointer(&error));
		return;
	}
	if (room->rejoining) {
		/* the replay of the join with stale ids; this one replays it all */
		g_queue_clear_full(&room->held, (GDestroyNotify)json_object_unref);
		room->rejoining = FALSE;
	}

	/* ids from another store mean nothing here */
	epoch = codechat_cmd_get_string(reply, "epoch");
	if (epoch != NULL && self->epoch == NULL)
		self->epoch = g_strdup(epoch);
	if (epoch != NULL && g_strcmp0(epoch, self->epoch) != 0)
		reset_epoch(self, epoch);
	if (room->resuming && epoch != NULL && op->epoch != NULL &&
	    g_strcmp0(epoch, op->epoch) != 0) {
		/* the replay answered a `since` of the old store: again */
		codechat_debug(CODECHAT_LOG_FIELDS(.room = room->name),
			       "#%s: joined with ids of another store, joining again",
			       room->name);
		join_room(self, room);
		room->rejoining = TRUE;
		return;
	}

	codechat_cmd_get_int(reply, "last_id", &last_id);
	if (!room->resuming) {
		/* where to resume from if the connection drops before a message */
		if (last_id >= 0 && (!room->positioned || (guint64)last_id > room->last_id)) {
			room->last_id = (guint64)last_id;
			room->positioned = TRUE;
		}
	} else {
		room->counting = TRUE;
		room->missed = 0;
		room->replay_until = last_id > 0 ? (guint64)last_id : 0;
	}
	codechat_info(CODECHAT_LOG_FIELDS(.room = room->name),
		      "joined #%s, last id %" G_GINT64_FORMAT,
		      room->name,
		      last_id);

	if (room->resuming) {
		if (room->last_id >= room->replay_until)
			note_resumed(self, room);
		if (codechat_cmd_get_bool(reply, "truncated"))
			fill_gap(self, room);
		else
			flush_held(self, room);
		if (self->finished || conn != self->conn)
			return;
	}
	if (self->joins_pending > 0 && --self->joins_pending == 0)
		session_settled(self);
}

static void
join_room(CodechatSession *self, SessionRoom *room)
{
	g_autoptr(JsonObject) request = codechat_cmd_request_new("join");

	json_object_set_string_member(request, "room", room->name);
	g_queue_clear_full(&room->held, (GDestroyNotify)json_object_unref);
	room->resuming = room->positioned;
	room->rejoining = FALSE;
	room->counting = FALSE;
	if (room->positioned) {
		codechat_debug(CODECHAT_LOG_FIELDS(.room = room->name),
			       "#%s: resuming after id %" G_GUINT64_FORMAT,
			       room->name,
			       room->last_id);
		json_object_set_int_member(request, "since", (gint64)room->last_id);
	}
	codechat_connection_request_async(self->conn,
					  request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  join_cb,
					  room_op_new(self, room));
}

static void
ping_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(CodechatSession) self = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (self->finished || conn != self->conn)
		return;
	self->ping_in_flight = FALSE;
	if (reply == NULL && g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_TIMED_OUT)) {
		notice(self, _("the server stopped answering"));
		codechat_connection_close_async(conn, NULL, NULL);
	}
}

/* libsoup 3.2 has no pong timeout: time our own pings */
static gboolean
ping_timeout_cb(gpointer user_data)
{
	CodechatSession *self = CODECHAT_SESSION(user_data);
	g_autoptr(JsonObject) request = NULL;

	if (self->conn == NULL || self->ping_in_flight || !codechat_connection_is_ready(self->conn))
		return G_SOURCE_CONTINUE;
	self->ping_in_flight = TRUE;
	request = codechat_cmd_request_new("ping");
	codechat_connection_request_async(self->conn,
					  request,
					  PING_TIMEOUT_S,
					  ping_cb,
					  g_object_ref(self));
	return G_SOURCE_CONTINUE;
}

static void
conn_message_cb(CodechatConnection *conn, JsonObject *frame, gpointer user_data)
{
	g_autoptr(CodechatSession) self = g_object_ref(CODECHAT_SESSION(user_data));
	const gchar *type = codechat_cmd_get_string(frame, "type");
	const gchar *name;
	SessionRoom *room;

	if (self->finished || conn != self->conn)
		return;
	if (g_strcmp0(type, "message") != 0) {
		g_signal_emit(self, signals[SIGNAL_FRAME], 0, frame);
		return;
	}
	name = codechat_cmd_get_string(frame, "room");
	room = name != NULL ? find_room(self, name) : NULL;
	if (room == NULL) {
		/* a direct message, or a room we did not ask for */
		g_signal_emit(self, signals[SIGNAL_MESSAGE], 0, frame);
	} else if (room->resuming) {
		g_queue_push_tail(&room->held, json_object_ref(frame));
	} else {
		deliver(self, room, frame);
	}
}

static void
conn_closed_cb(CodechatConnection *conn, guint code, const gchar *reason, gpointer user_data)
{
	g_autoptr(CodechatSession) self = g_object_ref(CODECHAT_SESSION(user_data));
	g_autofree gchar *why = NULL;
	guint delay_s;

	if (self->finished || conn != self->conn)
		return;
	if (code != 0 && code != SOUP_WEBSOCKET_CLOSE_ABNORMAL && reason != NULL &&
	    reason[0] != '\0')
		why = g_strdup_printf(_("%s (code %u)"), reason, code);
	else if (code != 0 && code != SOUP_WEBSOCKET_CLOSE_ABNORMAL)
		why = g_strdup_printf(_("code %u"), code);
	else if (reason != NULL && reason[0] != '\0')
		why = g_strdup(reason);
	delay_s = schedule_reconnect(self);
	if (why != NULL)
		notice(self, _("connection lost: %s; reconnecting in %u s…"), why, delay_s);
	else
		notice(self, _("connection lost; reconnecting in %u s…"), delay_s);
}

/* whether a failed connect is worth another try */
static gboolean
can_retry(CodechatSession *self, const GError *error)
{
	/* the server asks for it */
	if (g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_OVERLOADED)) {
		self->reached = TRUE;
		return TRUE;
	}
	/* the first connection fails fast: a wrong address is better told */
	if (!self->reached)
		return FALSE;
	/* a refusal of who we are will not heal by retrying; a nick still
	 * taken by our own dropped session will */
	return !g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_AUTH_FAILED) &&
	       !g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_BAD_NICK) &&
	       !g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_INVALID_ARGUMENT);
}

static void
connect_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(CodechatSession) self = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	const gchar *epoch;

	if (!codechat_connection_connect_finish(conn, result, &error)) {
		guint delay_s;

		if (self->finished || conn != self->conn)
			return;
		if (!can_retry(self, error)) {
			session_fail(self, g_steal_pointer(&error));
			return;
		}
		delay_s = schedule_reconnect(self);
		/* the server's words carry its code, as in codechat's errors */
		if (error->domain == CODECHAT_ERROR && error->code < CODECHAT_ERROR_NOT_CONNECTED)
			notice(self,
			       _("%s (%s); retrying in %u s…"),
			       error->message,
			       codechat_error_to_code(error->code),
			       delay_s);
		else
			notice(self, _("%s; retrying in %u s…"), error->message, delay_s);
		return;
	}
	if (self->finished || conn != self->conn)
		return;
	self->reached = TRUE;

	epoch = codechat_connection_get_epoch(conn);
	if (epoch != NULL && self->epoch != NULL && g_strcmp0(epoch, self->epoch) != 0)
		reset_epoch(self, epoch);
	else if (epoch != NULL && self->epoch == NULL)
		self->epoch = g_strdup(epoch);

	self->ping_id = g_timeout_add_seconds(PING_INTERVAL_S, ping_timeout_cb, self);
	self->joins_pending = self->rooms->len;
	if (self->rooms->len == 0) {
		session_settled(self);
		return;
	}
	/* a join callback may end the session or drop this connection */
	for (guint i = 0; i < self->rooms->len && conn == self->conn && !self->finished; i++)
		join_room(self, g_ptr_array_index(self->rooms, i));
}

static void
session_connect(CodechatSession *self)
{
	drop_connection(self);
	self->conn = codechat_connection_new(self->uri, self->nick, self->token);
	self->cancellable = g_cancellable_new();
	g_signal_connect_object(self->conn, "message", G_CALLBACK(conn_message_cb), self, 0);
	g_signal_connect_object(self->conn, "closed", G_CALLBACK(conn_closed_cb), self, 0);
	codechat_connection_connect_async(self->conn,
					  self->cancellable,
					  connect_cb,
					  g_object_ref(self));
}

/**
 * codechat_session_note_sent:
 * @message: the server's reply to a `say` sent on the session's connection
 *
 * The server answers the sender with the message instead of sending it as
 * a broadcast, so the session never sees its own messages go by: without
 * this, a resume would count them among the missed ones.  A reply comes in
 * order with the room's broadcasts, so every earlier message of the room
 * was delivered already, unless the room is still being resumed.
 */
void
codechat_session_note_sent(CodechatSession *self, JsonObject *message)
{
	const gchar *name;
	SessionRoom *room;
	gint64 id = 0;

	g_return_if_fail(CODECHAT_IS_SESSION(self));
	g_return_if_fail(message != NULL);

	name = codechat_cmd_get_string(message, "room");
	room = name != NULL ? find_room(self, name) : NULL;
	if (room == NULL || !room->positioned || room->resuming || room->counting)
		return;
	if (!codechat_cmd_get_int(message, "id", &id) || id < 1 || (guint64)id <= room->last_id)
		return;
	room->last_id = (guint64)id;
}

/**
 * codechat_session_add_room:
 * @room: a room to follow
 *
 * Follows @room: joined on the current connection if there is one, and
 * resumed on every later one.  The first join is plain: messages from
 * then on.
 */
void
codechat_session_add_room(CodechatSession *self, const gchar *room)
{
	SessionRoom *r;

	g_return_if_fail(CODECHAT_IS_SESSION(self));
	g_return_if_fail(room != NULL);

	if (find_room(self, room) != NULL)
		return;
	r = g_new0(SessionRoom, 1);
	r->name = g_strdup(room);
	g_queue_init(&r->held);
	g_ptr_array_add(self->rooms, r);
	if (!self->finished && self->conn != NULL && codechat_connection_is_ready(self->conn))
		join_room(self, r);
}

/**
 * codechat_session_start:
 *
 * Connects and joins the rooms.  A first connection that fails ends the
 * session with #CodechatSession::failed (unless the server is only
 * overloaded); after that, the session reconnects until it is closed.
 */
void
codechat_session_start(CodechatSession *self)
{
	g_return_if_fail(CODECHAT_IS_SESSION(self));
	g_return_if_fail(!self->started);

	self->started = TRUE;
	session_connect(self);
}

/**
 * codechat_session_get_connection:
 *
 * Returns: (transfer none) (nullable): the current connection when it is
 *   ready for requests (`say`, `who`, …), else %NULL
 */
CodechatConnection *
codechat_session_get_connection(CodechatSession *self)
{
	g_return_val_if_fail(CODECHAT_IS_SESSION(self), NULL);

	if (self->finished || self->conn == NULL || !codechat_connection_is_ready(self->conn))
		return NULL;
	return self->conn;
}

const gchar *
codechat_session_get_epoch(CodechatSession *self)
{
	g_return_val_if_fail(CODECHAT_IS_SESSION(self), NULL);
	return self->epoch;
}

static void
close_done_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(GTask) task = user_data;

	codechat_connection_close_finish(CODECHAT_CONNECTION(source), result, NULL);
	g_task_return_boolean(task, TRUE);
}

/**
 * codechat_session_close_async:
 *
 * Stops reconnecting and closes the current connection with 1000;
 * completes once the server answered the close (or after a few seconds).
 * No signal is emitted after this call.
 */
void
codechat_session_close_async(CodechatSession *self,
			     GAsyncReadyCallback callback,
			     gpointer user_data)
{
	g_autoptr(GTask) task = NULL;
	g_autoptr(CodechatConnection) conn = NULL;

	g_return_if_fail(CODECHAT_IS_SESSION(self));

	task = g_task_new(self, NULL, callback, user_data);
	g_task_set_source_tag(task, codechat_session_close_async);
	g_task_set_name(task, "codechat-session-close");

	self->finished = TRUE;
	g_clear_handle_id(&self->reconnect_id, g_source_remove);
	if (self->conn != NULL)
		conn = g_object_ref(self->conn);
	/* a connect in progress is cancelled by the close itself */
	g_clear_object(&self->cancellable);
	drop_connection(self);
	if (conn == NULL) {
		g_task_return_boolean(task, TRUE);
		return;
	}
	codechat_connection_close_async(conn, close_done_cb, g_steal_pointer(&task));
}

gboolean
codechat_session_close_finish(CodechatSession *self, GAsyncResult *result, GError **error)
{
	g_return_val_if_fail(CODECHAT_IS_SESSION(self), FALSE);
	g_return_val_if_fail(g_task_is_valid(result, self), FALSE);
	g_return_val_if_fail(error == NULL || *error == NULL, FALSE);

	return g_task_propagate_boolean(G_TASK(result), error);
}

static void
codechat_session_dispose(GObject *object)
{
	CodechatSession *self = CODECHAT_SESSION(object);

	self->finished = TRUE;
	g_clear_handle_id(&self->reconnect_id, g_source_remove);
	drop_connection(self);

	G_OBJECT_CLASS(codechat_session_parent_class)->dispose(object);
}

static void
codechat_session_finalize(GObject *object)
{
	CodechatSession *self = CODECHAT_SESSION(object);

	g_ptr_array_unref(self->rooms);
	g_free(self->epoch);
	g_free(self->uri);
	g_free(self->nick);
	g_free(self->token);

	G_OBJECT_CLASS(codechat_session_parent_class)->finalize(object);
}

static void
codechat_session_get_property(GObject *object, guint prop_id, GValue *value, GParamSpec *pspec)
{
	CodechatSession *self = CODECHAT_SESSION(object);

	switch (prop_id) {
	case PROP_URI:
		g_value_set_string(value, self->uri);
		break;
	case PROP_NICK:
		g_value_set_string(value, self->nick);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_session_set_property(GObject *object,
			      guint prop_id,
			      const GValue *value,
			      GParamSpec *pspec)
{
	CodechatSession *self = CODECHAT_SESSION(object);

	switch (prop_id) {
	case PROP_URI:
		g_free(self->uri);
		self->uri = g_value_dup_string(value);
		break;
	case PROP_NICK:
		g_free(self->nick);
		self->nick = g_value_dup_string(value);
		break;
	case PROP_TOKEN:
		g_free(self->token);
		self->token = g_value_dup_string(value);
		break;
	default:
		G_OBJECT_WARN_INVALID_PROPERTY_ID(object, prop_id, pspec);
	}
}

static void
codechat_session_class_init(CodechatSessionClass *klass)
{
	GObjectClass *object_class = G_OBJECT_CLASS(klass);

	object_class->dispose = codechat_session_dispose;
	object_class->finalize = codechat_session_finalize;
	object_class->get_property = codechat_session_get_property;
	object_class->set_property = codechat_session_set_property;

	properties[PROP_URI] =
	    g_param_spec_string("uri",
				NULL,
				NULL,
				NULL,
				G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
				    G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
	properties[PROP_NICK] =
	    g_param_spec_string("nick",
				NULL,
				NULL,
				NULL,
				G_PARAM_READWRITE | G_PARAM_CONSTRUCT_ONLY |
				    G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
	/* write-only: a secret */
	properties[PROP_TOKEN] =
	    g_param_spec_string("token",
				NULL,
				NULL,
				NULL,
				G_PARAM_WRITABLE | G_PARAM_CONSTRUCT_ONLY |
				    G_PARAM_EXPLICIT_NOTIFY | G_PARAM_STATIC_STRINGS);
	g_object_class_install_properties(object_class, N_PROPS, properties);

	/**
	 * CodechatSession::message:
	 * @message: a `message` frame
	 *
	 * A message of a followed room, each exactly once and in id order
	 * per room, also across reconnects; or a direct message, or one of
	 * a room not followed, as it came.
	 */
	signals[SIGNAL_MESSAGE] = g_signal_new("message",
					       G_TYPE_FROM_CLASS(klass),
					       G_SIGNAL_RUN_LAST,
					       0,
					       NULL,
					       NULL,
					       NULL,
					       G_TYPE_NONE,
					       1,
					       JSON_TYPE_OBJECT);

	/**
	 * CodechatSession::frame:
	 * @frame: a frame that answers no request and is not a message
	 *   (`presence`, an `error` without a ref, …)
	 */
	signals[SIGNAL_FRAME] = g_signal_new("frame",
					     G_TYPE_FROM_CLASS(klass),
					     G_SIGNAL_RUN_LAST,
					     0,
					     NULL,
					     NULL,
					     NULL,
					     G_TYPE_NONE,
					     1,
					     JSON_TYPE_OBJECT);

	/**
	 * CodechatSession::notice:
	 * @text: a sentence for people, translated, without a final newline
	 *
	 * What happens to the session: the connection was lost and when it
	 * will be tried again, a room was resumed and how much was missed,
	 * the server's history was reset.
	 */
	signals[SIGNAL_NOTICE] = g_signal_new("notice",
					      G_TYPE_FROM_CLASS(klass),
					      G_SIGNAL_RUN_LAST,
					      0,
					      NULL,
					      NULL,
					      NULL,
					      G_TYPE_NONE,
					      1,
					      G_TYPE_STRING);

	/**
	 * CodechatSession::ready:
	 *
	 * Every room is joined (and resumed) on a new connection.
	 */
	signals[SIGNAL_READY] = g_signal_new("ready",
					     G_TYPE_FROM_CLASS(klass),
					     G_SIGNAL_RUN_LAST,
					     0,
					     NULL,
					     NULL,
					     NULL,
					     G_TYPE_NONE,
					     0);

	/**
	 * CodechatSession::failed:
	 * @error: why: the first connection failed, or the server refused
	 *   something that retrying cannot heal
	 *
	 * The session is over: it will not connect again.  Close it.
	 */
	signals[SIGNAL_FAILED] = g_signal_new("failed",
					      G_TYPE_FROM_CLASS(klass),
					      G_SIGNAL_RUN_LAST,
					      0,
					      NULL,
					      NULL,
					      NULL,
					      G_TYPE_NONE,
					      1,
					      G_TYPE_ERROR);
}

static void
codechat_session_init(CodechatSession *self)
{
	self->rooms = g_ptr_array_new_with_free_func((GDestroyNotify)session_room_free);
}

/**
 * codechat_session_new:
 * @uri: a `ws://` or `wss://` URL
 * @nick: the nick to say hello with
 * @token: (nullable): the account's token
 */
CodechatSession *
codechat_session_new(const gchar *uri, const gchar *nick, const gchar *token)
{
	g_return_val_if_fail(uri != NULL, NULL);
	g_return_val_if_fail(nick != NULL, NULL);

	return g_object_new(CODECHAT_TYPE_SESSION, "uri", uri, "nick", nick, "token", token, NULL);
}
