/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <libsoup/soup.h>
#include <signal.h>

#include "codechat-cmd.h"

/* codechat watch [--room R]… [--notify]
 *
 * Joins the rooms and prints every message as it arrives until SIGINT or
 * SIGTERM, which close the session with 1000 and exit 0.  When the
 * connection drops it reconnects with a backoff (1 s doubling to 30 s)
 * and joins again with `since` = the last id it printed in each room,
 * so that the server replays what was missed: nothing is lost, and ids
 * already printed are skipped, so nothing is printed twice.  While a
 * resumed room's replay is not settled (joined not handled yet, or a
 * truncated replay whose gap is being filled from history), live frames
 * of that room are held back, to keep the output in id order. */

#define BACKOFF_MIN_S	1
#define BACKOFF_MAX_S	30
#define PING_INTERVAL_S 30
#define PING_TIMEOUT_S	15

typedef struct {
	gchar *name;	     /* (owned) */
	guint64 last_id;     /* the newest id printed or known at join */
	gboolean positioned; /* last_id is meaningful: resume with since */
	gboolean resuming;   /* holding live frames back */
	GQueue held;	     /* (element-type JsonObject) (owned) */
} WatchRoom;

typedef struct {
	CodechatApplication *app;  /* (unowned) held until finished */
	CodechatConnection *conn;  /* (owned) (nullable) the current session */
	GCancellable *cancellable; /* (owned) (nullable) its connect */
	GPtrArray *rooms;	   /* (owned) (element-type WatchRoom) */
	gchar *epoch;		   /* (owned) (nullable) the store the ids belong to */
	guint backoff_s;
	guint reconnect_id; /* GSource id, 0 if none */
	guint ping_id;	    /* GSource id, 0 if none */
	guint sigint_id;    /* GSource id, 0 if none */
	guint sigterm_id;   /* GSource id, 0 if none */
	guint joins_pending;
	gboolean connected_once;
	gboolean stopping;
	gboolean ping_in_flight;
} WatchState;

static void
watch_room_free(WatchRoom *room)
{
	g_queue_clear_full(&room->held, (GDestroyNotify)json_object_unref);
	g_free(room->name);
	g_free(room);
}

static void
watch_state_clear(WatchState *state)
{
	g_assert(state->reconnect_id == 0 && state->ping_id == 0);
	g_clear_object(&state->conn);
	g_clear_object(&state->cancellable);
	g_ptr_array_unref(state->rooms);
	g_free(state->epoch);
}

static WatchState *
watch_state_ref(WatchState *state)
{
	return g_rc_box_acquire(state);
}

static void
watch_state_unref(WatchState *state)
{
	g_rc_box_release_full(state, (GDestroyNotify)watch_state_clear);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(WatchState, watch_state_unref)

/* a request about one room */
typedef struct {
	WatchState *state; /* (owned) */
	WatchRoom *room;   /* (unowned) lives as long as the state */
} RoomOp;

static RoomOp *
room_op_new(WatchState *state, WatchRoom *room)
{
	RoomOp *op = g_new0(RoomOp, 1);

	op->state = watch_state_ref(state);
	op->room = room;
	return op;
}

static void
room_op_free(RoomOp *op)
{
	watch_state_unref(op->state);
	g_free(op);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(RoomOp, room_op_free)

static void
watch_connect(WatchState *state);

static WatchRoom *
find_room(WatchState *state, const gchar *name)
{
	for (guint i = 0; i < state->rooms->len; i++) {
		WatchRoom *room = g_ptr_array_index(state->rooms, i);

		if (g_strcmp0(room->name, name) == 0)
			return room;
	}
	return NULL;
}

static void
drop_connection(WatchState *state)
{
	g_clear_handle_id(&state->ping_id, g_source_remove);
	state->ping_in_flight = FALSE;
	if (state->cancellable != NULL)
		g_cancellable_cancel(state->cancellable);
	g_clear_object(&state->cancellable);
	if (state->conn != NULL)
		g_signal_handlers_disconnect_by_data(state->conn, state);
	g_clear_object(&state->conn);
}

/* ends the command: on a signal (@error NULL, exit 0) or a failure */
static void
watch_stop(WatchState *state, GError *error)
{
	g_autoptr(CodechatConnection) conn = NULL;

	if (state->stopping) {
		g_clear_error(&error);
		return;
	}
	state->stopping = TRUE;
	g_clear_handle_id(&state->reconnect_id, g_source_remove);
	g_clear_handle_id(&state->sigint_id, g_source_remove);
	g_clear_handle_id(&state->sigterm_id, g_source_remove);
	if (state->conn != NULL)
		conn = g_object_ref(state->conn);
	drop_connection(state);
	codechat_application_close_and_finish(state->app, conn, error);
	/* the command's own reference */
	watch_state_unref(state);
}

static gboolean
signal_cb(gpointer user_data)
{
	WatchState *state = user_data;

	g_info("interrupted: closing the connection");
	watch_stop(state, NULL);
	return G_SOURCE_REMOVE;
}

/* prints @message unless its id was printed already */
static void
deliver(WatchState *state, WatchRoom *room, JsonObject *message)
{
	gint64 id = 0;

	if (!codechat_cmd_get_int(message, "id", &id) || id < 1) {
		g_debug("ignoring a message without an id");
		return;
	}
	if (room->positioned && (guint64)id <= room->last_id) {
		g_debug("skipping message %" G_GINT64_FORMAT " of #%s: already printed",
			id,
			room->name);
		return;
	}
	room->last_id = (guint64)id;
	room->positioned = TRUE;
	codechat_output_message(codechat_application_get_output(state->app), message);
}

static void
flush_held(WatchState *state, WatchRoom *room)
{
	JsonObject *message;

	room->resuming = FALSE;
	while ((message = g_queue_pop_head(&room->held)) != NULL) {
		deliver(state, room, message);
		json_object_unref(message);
	}
}

static void
schedule_reconnect(WatchState *state);

static gboolean
is_connection_error(const GError *error)
{
	return g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_CLOSED) ||
	       g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_TIMED_OUT) ||
	       g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_NOT_CONNECTED);
}

/* a request failed: a dead connection is the reconnect's business, the
 * server's refusal ends the command */
static void
request_failed(WatchState *state, CodechatConnection *conn, GError *error)
{
	if (!is_connection_error(error)) {
		watch_stop(state, error);
		return;
	}
	g_debug("request failed: %s", error->message);
	/* a stuck session: close it, and closed_cb reconnects */
	if (g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_TIMED_OUT) && conn == state->conn)
		codechat_connection_close_async(conn, NULL, NULL);
	g_error_free(error);
}

static void
fill_gap(WatchState *state, WatchRoom *room);

static void
fill_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(RoomOp) op = user_data;
	WatchState *state = op->state;
	WatchRoom *room = op->room;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	JsonArray *messages;
	JsonObject *first_held;
	gint64 first_id = 0;
	guint n;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (state->stopping || conn != state->conn)
		return;
	if (reply == NULL) {
		request_failed(state, conn, g_steal_pointer(&error));
		return;
	}
	messages = codechat_cmd_get_array(reply, "messages");
	if (messages == NULL) {
		watch_stop(state, codechat_cmd_bad_reply_error(reply, "history"));
		return;
	}
	n = json_array_get_length(messages);
	for (guint i = 0; i < n; i++) {
		JsonNode *node = json_array_get_element(messages, i);

		if (JSON_NODE_HOLDS_OBJECT(node))
			deliver(state, room, json_node_get_object(node));
	}
	first_held = g_queue_peek_head(&room->held);
	if (first_held != NULL)
		codechat_cmd_get_int(first_held, "id", &first_id);
	if (n > 0 && codechat_cmd_get_bool(reply, "more") &&
	    (first_id == 0 || room->last_id + 1 < (guint64)first_id)) {
		fill_gap(state, room);
		return;
	}
	g_debug("#%s: caught up at id %" G_GUINT64_FORMAT, room->name, room->last_id);
	flush_held(state, room);
}

/* the replay was truncated: page forward from the last id printed */
static void
fill_gap(WatchState *state, WatchRoom *room)
{
	g_autoptr(JsonObject) request = codechat_cmd_request_new("history");

	g_debug("#%s: filling the gap after id %" G_GUINT64_FORMAT, room->name, room->last_id);
	json_object_set_string_member(request, "room", room->name);
	json_object_set_int_member(request, "after", (gint64)room->last_id);
	json_object_set_int_member(request, "limit", CODECHAT_MAX_PAGE);
	codechat_connection_request_async(state->conn,
					  request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  fill_cb,
					  room_op_new(state, room));
}

static void
join_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(RoomOp) op = user_data;
	WatchState *state = op->state;
	WatchRoom *room = op->room;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	const gchar *epoch;
	gint64 last_id = 0;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (state->stopping || conn != state->conn)
		return;
	if (reply == NULL) {
		request_failed(state, conn, g_steal_pointer(&error));
		return;
	}

	/* ids from another store mean nothing here */
	epoch = codechat_cmd_get_string(reply, "epoch");
	if (epoch != NULL && state->epoch != NULL && g_strcmp0(epoch, state->epoch) != 0) {
		g_info("#%s belongs to another history store: starting over", room->name);
		room->positioned = FALSE;
		room->last_id = 0;
	}
	if (epoch != NULL && g_strcmp0(epoch, state->epoch) != 0) {
		g_free(state->epoch);
		state->epoch = g_strdup(epoch);
	}
	/* where to resume from if the connection drops before a message */
	if (!room->resuming && codechat_cmd_get_int(reply, "last_id", &last_id) && last_id >= 0 &&
	    (!room->positioned || (guint64)last_id > room->last_id)) {
		room->last_id = (guint64)last_id;
		room->positioned = TRUE;
	}
	g_log_structured(G_LOG_DOMAIN,
			 G_LOG_LEVEL_INFO,
			 "CODECHAT_ROOM",
			 room->name,
			 "MESSAGE",
			 "joined #%s, last id %" G_GUINT64_FORMAT,
			 room->name,
			 room->last_id);

	if (room->resuming) {
		if (codechat_cmd_get_bool(reply, "truncated"))
			fill_gap(state, room);
		else
			flush_held(state, room);
	}
	if (state->joins_pending > 0 && --state->joins_pending == 0) {
		/* a session that got this far is a success: start the backoff over */
		state->backoff_s = BACKOFF_MIN_S;
		g_debug("watching %u rooms", state->rooms->len);
	}
}

static void
join_room(WatchState *state, WatchRoom *room)
{
	g_autoptr(JsonObject) request = codechat_cmd_request_new("join");

	json_object_set_string_member(request, "room", room->name);
	g_queue_clear_full(&room->held, (GDestroyNotify)json_object_unref);
	room->resuming = room->positioned;
	if (room->positioned) {
		g_debug("#%s: resuming after id %" G_GUINT64_FORMAT, room->name, room->last_id);
		json_object_set_int_member(request, "since", (gint64)room->last_id);
	}
	codechat_connection_request_async(state->conn,
					  request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  join_cb,
					  room_op_new(state, room));
}

static void
ping_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(WatchState) state = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (state->stopping || conn != state->conn)
		return;
	state->ping_in_flight = FALSE;
	if (reply == NULL && g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_TIMED_OUT)) {
		codechat_application_note(state->app, _("the server stopped answering"));
		codechat_connection_close_async(conn, NULL, NULL);
	}
}

static gboolean
ping_timeout_cb(gpointer user_data)
{
	WatchState *state = user_data;
	g_autoptr(JsonObject) request = NULL;

	if (state->conn == NULL || state->ping_in_flight ||
	    !codechat_connection_is_ready(state->conn))
		return G_SOURCE_CONTINUE;
	state->ping_in_flight = TRUE;
	request = codechat_cmd_request_new("ping");
	codechat_connection_request_async(state->conn,
					  request,
					  PING_TIMEOUT_S,
					  ping_cb,
					  watch_state_ref(state));
	return G_SOURCE_CONTINUE;
}

static void
message_cb(CodechatConnection *conn, JsonObject *frame, gpointer user_data)
{
	WatchState *state = user_data;
	const gchar *type = codechat_cmd_get_string(frame, "type");
	const gchar *name;
	WatchRoom *room;

	if (state->stopping || conn != state->conn)
		return;
	if (g_strcmp0(type, "message") == 0) {
		name = codechat_cmd_get_string(frame, "room");
		room = name != NULL ? find_room(state, name) : NULL;
		if (room == NULL) {
			/* a direct message, or a room we did not ask for */
			codechat_output_message(codechat_application_get_output(state->app), frame);
		} else if (room->resuming) {
			g_queue_push_tail(&room->held, json_object_ref(frame));
		} else {
			deliver(state, room, frame);
		}
	} else if (g_strcmp0(type, "error") == 0) {
		const gchar *code = codechat_cmd_get_string(frame, "code");
		const gchar *message = codechat_cmd_get_string(frame, "message");

		codechat_application_note(state->app,
					  "%s (%s)",
					  message != NULL ? message : "error",
					  code != NULL ? code : "internal");
	} else {
		g_debug("%s frame", type != NULL ? type : "typeless");
	}
}

static void
closed_cb(CodechatConnection *conn, guint code, const gchar *reason, gpointer user_data)
{
	WatchState *state = user_data;

	if (state->stopping || conn != state->conn)
		return;
	if (code == 0 || code == SOUP_WEBSOCKET_CLOSE_ABNORMAL)
		codechat_application_note(state->app,
					  _("connection lost%s%s; reconnecting in %u s"),
					  reason != NULL && reason[0] != '\0' ? ": " : "",
					  reason != NULL ? reason : "",
					  state->backoff_s);
	else
		codechat_application_note(
		    state->app,
		    _("connection closed (code %u%s%s); reconnecting in %u s"),
		    code,
		    reason != NULL && reason[0] != '\0' ? ": " : "",
		    reason != NULL ? reason : "",
		    state->backoff_s);
	schedule_reconnect(state);
}

static gboolean
reconnect_cb(gpointer user_data)
{
	WatchState *state = user_data;

	state->reconnect_id = 0;
	watch_connect(state);
	return G_SOURCE_REMOVE;
}

static void
schedule_reconnect(WatchState *state)
{
	guint delay = state->backoff_s;

	drop_connection(state);
	state->backoff_s = MIN(state->backoff_s * 2, BACKOFF_MAX_S);
	g_clear_handle_id(&state->reconnect_id, g_source_remove);
	state->reconnect_id = g_timeout_add_seconds(delay, reconnect_cb, state);
}

static void
connect_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(WatchState) state = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	const gchar *epoch;

	if (!codechat_connection_connect_finish(conn, result, &error)) {
		if (state->stopping || conn != state->conn)
			return;
		/* the first connection fails fast; a refusal of who we are
		 * will not heal by retrying */
		if (!state->connected_once ||
		    g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_AUTH_FAILED) ||
		    g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_BAD_NICK) ||
		    g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_INVALID_ARGUMENT)) {
			watch_stop(state, g_steal_pointer(&error));
			return;
		}
		codechat_application_note(state->app,
					  _("%s; retrying in %u s"),
					  error->message,
					  state->backoff_s);
		schedule_reconnect(state);
		return;
	}
	if (state->stopping || conn != state->conn)
		return;
	if (state->connected_once)
		codechat_application_note(state->app, _("reconnected"));
	state->connected_once = TRUE;

	epoch = codechat_connection_get_epoch(conn);
	if (epoch != NULL && state->epoch != NULL && g_strcmp0(epoch, state->epoch) != 0) {
		codechat_application_note(state->app,
					  _("the server's history was reset: starting over"));
		for (guint i = 0; i < state->rooms->len; i++) {
			WatchRoom *room = g_ptr_array_index(state->rooms, i);

			room->positioned = FALSE;
			room->last_id = 0;
		}
	}
	if (epoch != NULL) {
		g_free(state->epoch);
		state->epoch = g_strdup(epoch);
	}
	state->joins_pending = state->rooms->len;
	for (guint i = 0; i < state->rooms->len; i++)
		join_room(state, g_ptr_array_index(state->rooms, i));
	state->ping_id = g_timeout_add_seconds(PING_INTERVAL_S, ping_timeout_cb, state);
}

static void
watch_connect(WatchState *state)
{
	drop_connection(state);
	state->conn = codechat_application_new_connection(state->app);
	state->cancellable = g_cancellable_new();
	g_signal_connect(state->conn, "message", G_CALLBACK(message_cb), state);
	g_signal_connect(state->conn, "closed", G_CALLBACK(closed_cb), state);
	codechat_connection_connect_async(state->conn,
					  state->cancellable,
					  connect_cb,
					  watch_state_ref(state));
}

void
codechat_cmd_watch(CodechatApplication *app)
{
	g_auto(GStrv) args = NULL;
	g_auto(GStrv) rooms = NULL;
	gboolean notify = FALSE;
	WatchState *state;
	const GOptionEntry entries[] = {
	    {"room",
	     'r',
	     0,
	     G_OPTION_ARG_STRING_ARRAY,
	     &rooms,
	     N_("Room to watch; repeat for more (default: general, or $CODECHAT_ROOM)"),
	     N_("ROOM")},
	    {"notify",
	     0,
	     0,
	     G_OPTION_ARG_NONE,
	     &notify,
	     N_("Also show desktop notifications"),
	     NULL},
	    {NULL},
	};

	if (!codechat_application_parse_options(app, entries, FALSE, &args))
		return;
	if (!codechat_application_check_no_args(app, args))
		return;
	if (notify)
		g_debug("--notify: desktop notifications are not implemented yet");

	state = g_rc_box_new0(WatchState);
	state->app = app;
	state->backoff_s = BACKOFF_MIN_S;
	state->rooms = g_ptr_array_new_with_free_func((GDestroyNotify)watch_room_free);
	for (guint i = 0; rooms != NULL && rooms[i] != NULL; i++) {
		WatchRoom *room;

		if (find_room(state, rooms[i]) != NULL)
			continue;
		room = g_new0(WatchRoom, 1);
		room->name = g_strdup(rooms[i]);
		g_queue_init(&room->held);
		g_ptr_array_add(state->rooms, room);
	}
	if (state->rooms->len == 0) {
		WatchRoom *room = g_new0(WatchRoom, 1);

		room->name = g_strdup(codechat_application_get_default_room(app));
		g_queue_init(&room->held);
		g_ptr_array_add(state->rooms, room);
	}
	state->sigint_id = g_unix_signal_add(SIGINT, signal_cb, state);
	state->sigterm_id = g_unix_signal_add(SIGTERM, signal_cb, state);
	watch_connect(state);
}
