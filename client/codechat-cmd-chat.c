/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <signal.h>
#include <string.h>

#include "codechat-chat-input.h"
#include "codechat-cmd.h"
#include "codechat-notify.h"
#include "codechat-session.h"

/* codechat chat [--room R]
 *
 * The interactive client.  When both stdin and stdout are terminals,
 * GNU readline edits the line (CodechatChatInput, in
 * codechat-chat-input.c); what arrives is printed above the prompt, and
 * the line being typed is drawn again below it.  Otherwise chat reads
 * plain lines from stdin, the same commands, without a prompt: handy for
 * scripts, and it reads a line only while connected, so that `/who` or
 * `/history` in a script always get an answer.  End of input (Ctrl-D, or the end of the
 * piped text) and `/quit` wait for what was sent to be acknowledged,
 * then close with 1000 and exit 0; SIGINT, SIGTERM and SIGHUP (the
 * terminal closed) close at once.
 *
 * On start, the last page of each room's history is shown (the backlog),
 * then live messages.  The CodechatSession reconnects after a drop or a
 * daemon restart and resumes every room with `join` + `since`; the
 * prompt says `(offline)` meanwhile, and lines typed then are sent once
 * connected again.  Every room message is printed once: the ids shown
 * are remembered per room, so neither the backlog, nor the replay after
 * a reconnect, nor our own acknowledged messages come twice.
 *
 * CodechatSession cannot stop following a room: after `/part`, the room's
 * messages are ignored here, and parted again after each reconnect. */

typedef enum {
	BACKLOG_DONE,	   /* shown, or not wanted */
	BACKLOG_NEEDED,	   /* to ask for once connected */
	BACKLOG_REQUESTED, /* asked for on the current connection */
} BacklogState;

typedef struct {
	gchar *name;	 /* (owned) */
	gint64 shown_id; /* the newest id printed, 0 if none */
	GQueue held;	 /* (element-type JsonObject) (owned) live messages
			  * that wait for the backlog */
	BacklogState backlog;
} ChatRoom;

typedef enum {
	OP_SAY,
	OP_JOIN,
	OP_PART,
	OP_QUIET_PART,
	OP_QUIET_WHO, /* for completion */
	OP_WHO,
	OP_ROOMS,
	OP_HISTORY,
	OP_BACKLOG,
} OpKind;

typedef struct _Chat Chat;

/* a request in flight; holds a reference on the chat */
typedef struct {
	Chat *chat; /* (owned) */
	OpKind kind;
	gchar *room;	     /* (owned) (nullable) */
	JsonObject *request; /* (owned) */
} ChatOp;

struct _Chat {
	CodechatApplication *app;   /* (unowned) held until finished */
	CodechatOutput *output;	    /* (unowned) the application's */
	CodechatSession *session;   /* (owned) */
	CodechatChatInput *input;   /* (owned) */
	CodechatNotifier *notifier; /* (owned) (nullable) notify mode off */
	GPtrArray *rooms;	    /* (owned) (element-type ChatRoom) rooms we are in */
	GPtrArray *parted;	    /* (owned) (element-type utf8) followed by the session, left */
	GHashTable *left_at;	    /* (owned) room → (gint64 *) the id shown when it was left */
	GHashTable *nicks;	    /* (owned) (element-type utf8) seen, for completion */
	gchar *current;		    /* (owned) (nullable) where plain text goes */
	GQueue outbox;		    /* (element-type ChatOp) (owned) says typed offline */
	GString *code;		    /* (owned) (nullable) a /code block being typed */
	gchar *code_lang;	    /* (owned) (nullable) its language */
	gchar *epoch;		    /* (owned) (nullable) the store the shown ids belong to */
	GError *error;		    /* (owned) (nullable) why it stopped */
	guint in_flight;	    /* requests sent and not answered */
	guint sigint_id;	    /* GSource id, 0 if none */
	guint sigterm_id;	    /* GSource id, 0 if none */
	guint sighup_id;	    /* GSource id, 0 if none: the terminal was closed */
	gboolean online;	    /* the session is ready */
	gboolean ever_online;
	gboolean quitting; /* waiting for answers, then stop */
	gboolean stopping; /* closing the session */
};

static void
chat_room_free(ChatRoom *room)
{
	g_queue_clear_full(&room->held, (GDestroyNotify)json_object_unref);
	g_free(room->name);
	g_free(room);
}

static void
chat_clear(Chat *chat)
{
	g_assert(chat->sigint_id == 0 && chat->sigterm_id == 0 && chat->sighup_id == 0);
	if (chat->session != NULL)
		g_signal_handlers_disconnect_by_data(chat->session, chat);
	g_clear_object(&chat->session);
	g_clear_object(&chat->notifier);
	g_clear_pointer(&chat->rooms, g_ptr_array_unref);
	g_clear_pointer(&chat->parted, g_ptr_array_unref);
	g_clear_pointer(&chat->left_at, g_hash_table_unref);
	g_clear_pointer(&chat->nicks, g_hash_table_unref);
	g_clear_pointer(&chat->input, codechat_chat_input_free);
	g_clear_pointer(&chat->current, g_free);
	g_assert(g_queue_is_empty(&chat->outbox));
	if (chat->code != NULL)
		g_string_free(chat->code, TRUE);
	g_clear_pointer(&chat->code_lang, g_free);
	g_clear_pointer(&chat->epoch, g_free);
	g_clear_error(&chat->error);
}

static Chat *
chat_ref(Chat *chat)
{
	return g_rc_box_acquire(chat);
}

static void
chat_unref(Chat *chat)
{
	g_rc_box_release_full(chat, (GDestroyNotify)chat_clear);
}

static ChatOp *
chat_op_new(Chat *chat, OpKind kind, const gchar *room, JsonObject *request)
{
	ChatOp *op = g_new0(ChatOp, 1);

	op->chat = chat_ref(chat);
	op->kind = kind;
	op->room = g_strdup(room);
	op->request = json_object_ref(request);
	return op;
}

static void
chat_op_free(ChatOp *op)
{
	chat_unref(op->chat);
	g_free(op->room);
	json_object_unref(op->request);
	g_free(op);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(ChatOp, chat_op_free)

static void
chat_stop(Chat *chat, GError *error);
static void
chat_maybe_stop(Chat *chat);
static void
chat_send(Chat *chat, ChatOp *op);

/* printing */

/* one or more lines, without the final newline, above the prompt */
static void
chat_print(Chat *chat, const gchar *text)
{
	codechat_chat_input_print(chat->input, text);
}

/* a line of the client's own, @text safe to print: `-- text`, dim when
 * in colour */
static void
chat_status_safe(Chat *chat, const gchar *text)
{
	g_autofree gchar *line = NULL;

	if (codechat_output_use_color(chat->output))
		line = g_strdup_printf("\033[2m-- %s\033[0m", text);
	else
		line = g_strdup_printf("-- %s", text);
	chat_print(chat, line);
}

static void
chat_status(Chat *chat, const gchar *format, ...) G_GNUC_PRINTF(2, 3);

static void
chat_status(Chat *chat, const gchar *format, ...)
{
	va_list args;
	g_autofree gchar *formatted = NULL;
	g_autofree gchar *text = NULL;

	va_start(args, format);
	formatted = g_strdup_vprintf(format, args);
	va_end(args);
	/* it may quote the server (errors, close reasons) */
	text = codechat_output_sanitize(formatted);
	chat_status_safe(chat, text);
}

static void
chat_add_nick(Chat *chat, const gchar *nick)
{
	if (nick != NULL && codechat_validate_nick(nick, NULL) &&
	    !g_hash_table_contains(chat->nicks, nick))
		g_hash_table_add(chat->nicks, g_strdup(nick));
}

static void
chat_print_message(Chat *chat, JsonObject *message)
{
	g_autofree gchar *line = codechat_output_format_message(chat->output, message);

	chat_add_nick(chat, codechat_cmd_get_string(message, "from"));
	chat_print(chat, line);
}

static gchar *
chat_make_prompt(Chat *chat)
{
	g_autofree gchar *where = NULL;

	if (chat->code != NULL)
		return g_strdup("... ");
	where = chat->current != NULL ? g_strdup_printf("#%s", chat->current)
				      : g_strdup(_("no room"));
	if (chat->online)
		return g_strdup_printf("[%s] ", where);
	if (!chat->ever_online)
		return g_strdup_printf(_("[%s (connecting)] "), where);
	return g_strdup_printf(_("[%s (offline)] "), where);
}

/* the prompt says where plain text goes and whether we are connected */
static void
chat_update_prompt(Chat *chat)
{
	g_autofree gchar *prompt = chat_make_prompt(chat);

	codechat_chat_input_set_prompt(chat->input, prompt);
}

/* rooms */

static ChatRoom *
chat_find_room(Chat *chat, const gchar *name)
{
	for (guint i = 0; i < chat->rooms->len; i++) {
		ChatRoom *room = g_ptr_array_index(chat->rooms, i);

		if (g_strcmp0(room->name, name) == 0)
			return room;
	}
	return NULL;
}

static gboolean
chat_is_parted(Chat *chat, const gchar *name, guint *index)
{
	return g_ptr_array_find_with_equal_func(chat->parted, name, g_str_equal, index);
}

static ChatRoom *
chat_add_room(Chat *chat, const gchar *name)
{
	ChatRoom *room = g_new0(ChatRoom, 1);
	gint64 *shown_id = g_hash_table_lookup(chat->left_at, name);

	room->name = g_strdup(name);
	room->backlog = BACKLOG_NEEDED;
	/* back in a room: what was shown then is not shown again */
	if (shown_id != NULL)
		room->shown_id = *shown_id;
	g_queue_init(&room->held);
	g_ptr_array_add(chat->rooms, room);
	return room;
}

/* the user asked for notifications by the setting: say once, in the
 * chat, that they cannot be shown */
static void
chat_notifier_unavailable_cb(CodechatNotifier *notifier, const gchar *reason, gpointer user_data)
{
	Chat *chat = user_data;

	chat_status(chat, _("desktop notifications are unavailable: %s"), reason);
}

static void
chat_notify(Chat *chat, JsonObject *message)
{
	g_autoptr(GError) error = NULL;
	g_autoptr(CodechatMessage) msg = NULL;

	if (chat->notifier == NULL)
		return;
	msg = codechat_message_from_json(message, &error);
	if (msg == NULL)
		g_debug("not notifying: %s", error->message);
	else
		codechat_notifier_handle(chat->notifier, msg);
}

/* prints a live message of @room unless it was printed already, and
 * notifies it when it is someone else's (the backlog never notifies) */
static void
chat_show_room_message(Chat *chat, ChatRoom *room, JsonObject *message)
{
	gint64 id = 0;

	if (!codechat_cmd_get_int(message, "id", &id))
		return;
	if (id <= room->shown_id) {
		g_debug("#%s: %" G_GINT64_FORMAT " shown already", room->name, id);
		return;
	}
	room->shown_id = id;
	chat_print_message(chat, message);
	if (g_strcmp0(codechat_cmd_get_string(message, "from"),
		      codechat_application_get_nick(chat->app)) != 0)
		chat_notify(chat, message);
}

/* ids belong to one history store: when the server's was created anew,
 * its ids start from 1 again, and what was shown tells nothing */
static void
chat_check_epoch(Chat *chat)
{
	const gchar *epoch = codechat_session_get_epoch(chat->session);

	if (epoch == NULL || g_strcmp0(epoch, chat->epoch) == 0)
		return;
	if (chat->epoch != NULL) {
		g_debug("new history store %s: forgetting the ids shown", epoch);
		for (guint i = 0; i < chat->rooms->len; i++) {
			ChatRoom *room = g_ptr_array_index(chat->rooms, i);

			room->shown_id = 0;
		}
		g_hash_table_remove_all(chat->left_at);
	}
	g_free(chat->epoch);
	chat->epoch = g_strdup(epoch);
}

/* a message that came by itself or acknowledges ours */
static void
chat_handle_message(Chat *chat, JsonObject *message)
{
	const gchar *name = codechat_cmd_get_string(message, "room");
	ChatRoom *room;

	chat_check_epoch(chat);
	if (name == NULL) {
		/* a direct message: never replayed, never doubled */
		chat_print_message(chat, message);
		if (g_strcmp0(codechat_cmd_get_string(message, "from"),
			      codechat_application_get_nick(chat->app)) != 0)
			chat_notify(chat, message);
		return;
	}
	room = chat_find_room(chat, name);
	if (room == NULL) {
		g_debug("ignoring a message of #%s: not in it", name);
		return;
	}
	if (room->backlog != BACKLOG_DONE) {
		g_queue_push_tail(&room->held, json_object_ref(message));
		return;
	}
	chat_show_room_message(chat, room, message);
}

static void
chat_backlog_done(Chat *chat, ChatRoom *room)
{
	JsonObject *message;

	room->backlog = BACKLOG_DONE;
	while ((message = g_queue_pop_head(&room->held)) != NULL) {
		chat_show_room_message(chat, room, message);
		json_object_unref(message);
	}
}

static void
chat_request_backlogs(Chat *chat)
{
	guint limit = codechat_application_get_history_limit(chat->app);

	if (!chat->online)
		return;
	for (guint i = 0; i < chat->rooms->len; i++) {
		ChatRoom *room = g_ptr_array_index(chat->rooms, i);
		g_autoptr(JsonObject) request = NULL;

		if (room->backlog != BACKLOG_NEEDED)
			continue;
		if (limit == 0) {
			chat_backlog_done(chat, room);
			continue;
		}
		room->backlog = BACKLOG_REQUESTED;
		request = codechat_cmd_request_new("history");
		json_object_set_string_member(request, "room", room->name);
		json_object_set_int_member(request, "limit", MIN(limit, CODECHAT_MAX_PAGE));
		chat_send(chat, chat_op_new(chat, OP_BACKLOG, room->name, request));
		/* who is there, for completion */
		g_clear_pointer(&request, json_object_unref);
		request = codechat_cmd_request_new("who");
		json_object_set_string_member(request, "room", room->name);
		chat_send(chat, chat_op_new(chat, OP_QUIET_WHO, room->name, request));
	}
}

/* requests */

static void
chat_print_history(Chat *chat, JsonArray *messages)
{
	for (guint i = 0; i < json_array_get_length(messages); i++) {
		JsonNode *node = json_array_get_element(messages, i);

		if (JSON_NODE_HOLDS_OBJECT(node))
			chat_print_message(chat, json_node_get_object(node));
	}
}

static void
chat_handle_backlog(Chat *chat, ChatOp *op, JsonObject *reply, const GError *error)
{
	ChatRoom *room = chat_find_room(chat, op->room);
	JsonArray *messages;

	if (room == NULL || room->backlog != BACKLOG_REQUESTED)
		return;
	chat_check_epoch(chat);
	if (reply == NULL && g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_CLOSED)) {
		/* asked again once connected again */
		room->backlog = BACKLOG_NEEDED;
		return;
	}
	if (reply == NULL) {
		chat_status(chat,
			    _("cannot show the history of #%s: %s"),
			    room->name,
			    error->message);
		chat_backlog_done(chat, room);
		return;
	}
	messages = codechat_cmd_get_array(reply, "messages");
	for (guint i = 0; messages != NULL && i < json_array_get_length(messages); i++) {
		JsonNode *node = json_array_get_element(messages, i);
		JsonObject *message;
		gint64 id = 0;

		if (!JSON_NODE_HOLDS_OBJECT(node))
			continue;
		message = json_node_get_object(node);
		/* what was shown before a /part stays above */
		if (codechat_cmd_get_int(message, "id", &id) && id <= room->shown_id)
			continue;
		chat_print_message(chat, message);
		room->shown_id = MAX(room->shown_id, id);
	}
	chat_status(chat, _("now talking in #%s"), room->name);
	chat_backlog_done(chat, room);
}

static void
chat_handle_reply(Chat *chat, ChatOp *op, JsonObject *reply, const GError *error)
{
	switch (op->kind) {
	case OP_BACKLOG:
		chat_handle_backlog(chat, op, reply, error);
		return;
	case OP_QUIET_PART:
		return;
	case OP_QUIET_WHO: {
		JsonArray *members = reply != NULL ? codechat_cmd_get_array(reply, "members")
						   : NULL;

		for (guint i = 0; members != NULL && i < json_array_get_length(members); i++) {
			JsonNode *node = json_array_get_element(members, i);

			if (JSON_NODE_HOLDS_VALUE(node) &&
			    json_node_get_value_type(node) == G_TYPE_STRING)
				chat_add_nick(chat, json_node_get_string(node));
		}
		return;
	}
	default:
		break;
	}
	if (reply == NULL) {
		if (op->kind == OP_SAY &&
		    g_error_matches(error, CODECHAT_ERROR, CODECHAT_ERROR_CLOSED))
			chat_status(chat,
				    _("the connection dropped before the server acknowledged "
				      "a message: it may not have been sent"));
		else if (error->domain == CODECHAT_ERROR &&
			 error->code < CODECHAT_ERROR_NOT_CONNECTED)
			chat_status(chat,
				    "%s (%s)",
				    error->message,
				    codechat_error_to_code(error->code));
		else
			chat_status(chat, "%s", error->message);
		return;
	}

	switch (op->kind) {
	case OP_SAY:
		codechat_session_note_sent(chat->session, reply);
		chat_handle_message(chat, reply);
		break;
	case OP_JOIN: {
		ChatRoom *room = chat_find_room(chat, op->room);

		if (room != NULL)
			chat_request_backlogs(chat);
		break;
	}
	case OP_PART:
		chat_status(chat, _("left #%s"), op->room);
		break;
	case OP_WHO: {
		JsonArray *members = codechat_cmd_get_array(reply, "members");
		g_autoptr(GString) names = g_string_new(NULL);
		g_autofree gchar *room = codechat_output_sanitize(op->room);
		g_autofree gchar *text = NULL;
		guint n = 0;

		for (guint i = 0; members != NULL && i < json_array_get_length(members); i++) {
			JsonNode *node = json_array_get_element(members, i);
			g_autofree gchar *nick = NULL;

			if (!JSON_NODE_HOLDS_VALUE(node) ||
			    json_node_get_value_type(node) != G_TYPE_STRING)
				continue;
			chat_add_nick(chat, json_node_get_string(node));
			nick = codechat_output_sanitize(json_node_get_string(node));
			if (n++ > 0)
				g_string_append(names, ", ");
			/* each in its colour, then dim again */
			if (codechat_output_use_color(chat->output))
				g_string_append_printf(names,
						       "%s%s\033[0m\033[2m",
						       codechat_output_nick_color(nick),
						       nick);
			else
				g_string_append(names, nick);
		}
		if (n == 0) {
			chat_status(chat, _("nobody is in #%s"), op->room);
			break;
		}
		/* the names are sanitized, their colours are ours */
		text = g_strdup_printf(g_dngettext(GETTEXT_PACKAGE,
						   "#%s has %u member: %s",
						   "#%s has %u members: %s",
						   n),
				       room,
				       n,
				       names->str);
		chat_status_safe(chat, text);
		break;
	}
	case OP_ROOMS: {
		JsonArray *rooms = codechat_cmd_get_array(reply, "rooms");
		guint n = rooms != NULL ? json_array_get_length(rooms) : 0;

		if (n == 0)
			chat_status(chat, _("there are no rooms yet"));
		else
			chat_status(chat, _("rooms:"));
		for (guint i = 0; i < n; i++) {
			JsonNode *node = json_array_get_element(rooms, i);
			g_autofree gchar *line = NULL;

			if (!JSON_NODE_HOLDS_OBJECT(node))
				continue;
			line =
			    codechat_output_format_room(chat->output, json_node_get_object(node));
			chat_print(chat, line);
		}
		break;
	}
	case OP_HISTORY: {
		JsonArray *messages = codechat_cmd_get_array(reply, "messages");
		guint n = messages != NULL ? json_array_get_length(messages) : 0;

		if (n == 0) {
			chat_status(chat, _("no messages in #%s yet"), op->room);
			break;
		}
		chat_status(chat,
			    g_dngettext(GETTEXT_PACKAGE,
					"the last %u message of #%s:",
					"the last %u messages of #%s:",
					n),
			    n,
			    op->room);
		chat_print_history(chat, messages);
		chat_status(chat, _("end of history"));
		break;
	}
	case OP_BACKLOG:
	case OP_QUIET_PART:
	case OP_QUIET_WHO:
		g_assert_not_reached();
	}
}

static void
chat_reply_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(ChatOp) op = user_data;
	Chat *chat = op->chat;
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;

	reply = codechat_connection_request_finish(CODECHAT_CONNECTION(source), result, &error);
	g_assert(chat->in_flight > 0);
	chat->in_flight--;
	if (!chat->stopping)
		chat_handle_reply(chat, op, reply, error);
	chat_maybe_stop(chat);
}

/* sends @op now, or (a message) once connected again; takes @op */
static void
chat_send(Chat *chat, ChatOp *op)
{
	CodechatConnection *conn = NULL;

	if (chat->online)
		conn = codechat_session_get_connection(chat->session);
	if (conn == NULL) {
		if (op->kind == OP_SAY) {
			g_queue_push_tail(&chat->outbox, op);
			if (chat->ever_online)
				chat_status(chat,
					    _("not connected: the message will be sent "
					      "once connected again"));
			return;
		}
		if (op->kind != OP_QUIET_PART && op->kind != OP_QUIET_WHO && op->kind != OP_BACKLOG)
			chat_status(chat, _("not connected: try again once connected"));
		chat_op_free(op);
		return;
	}
	chat->in_flight++;
	codechat_connection_request_async(conn,
					  op->request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  chat_reply_cb,
					  op);
}

static void
chat_flush_outbox(Chat *chat)
{
	ChatOp *op;

	while (chat->online && (op = g_queue_pop_head(&chat->outbox)) != NULL) {
		/* a new ref comes with the new connection */
		json_object_remove_member(op->request, "ref");
		chat_send(chat, op);
	}
}

static void
chat_say(Chat *chat,
	 const gchar *kind,
	 const gchar *room,
	 const gchar *to,
	 const gchar *text,
	 const gchar *lang)
{
	g_autoptr(JsonObject) request = codechat_cmd_request_new("say");

	if (room != NULL)
		json_object_set_string_member(request, "room", room);
	else
		json_object_set_string_member(request, "to", to);
	json_object_set_string_member(request, "text", text);
	if (kind != NULL)
		json_object_set_string_member(request, "kind", kind);
	if (lang != NULL)
		json_object_set_string_member(request, "lang", lang);
	chat_send(chat, chat_op_new(chat, OP_SAY, room, request));
}

static void
chat_simple_request(Chat *chat, OpKind kind, const gchar *type, const gchar *room)
{
	g_autoptr(JsonObject) request = codechat_cmd_request_new(type);

	if (room != NULL)
		json_object_set_string_member(request, "room", room);
	chat_send(chat, chat_op_new(chat, kind, room, request));
}

/* commands */

static const struct {
	const gchar *usage;
	const gchar *what;
} chat_commands[] = {
    {N_("/join ROOM"), N_("join ROOM (or switch to it) and talk there")},
    {N_("/part [ROOM]"), N_("leave ROOM, by default the current one")},
    {N_("/me ACTION"), N_("say that you do ACTION")},
    {N_("/msg NICK TEXT"), N_("send TEXT to NICK alone")},
    {N_("/who [ROOM]"), N_("list who is in the room")},
    {N_("/rooms"), N_("list the rooms of the server")},
    {N_("/history [N]"), N_("show the last N messages of the room")},
    {N_("/code [LANG]"),
     N_("send a snippet in LANG: type its lines, then a line with a single “.”")},
    {N_("/help"), N_("show this list")},
    {N_("/quit"), N_("leave (Ctrl-D does too)")},
};

static void
chat_help(Chat *chat)
{
	g_autoptr(GString) text = g_string_new(NULL);
	glong width = 16;

	/* the usages are translated: a column that leaves the widest two
	 * spaces at least, counted in characters, not bytes */
	for (gsize i = 0; i < G_N_ELEMENTS(chat_commands); i++)
		width = MAX(width, g_utf8_strlen(_(chat_commands[i].usage), -1) + 2);
	g_string_append(text, _("commands:"));
	for (gsize i = 0; i < G_N_ELEMENTS(chat_commands); i++) {
		const gchar *usage = _(chat_commands[i].usage);

		g_string_append_printf(text,
				       "\n   %s%*s %s",
				       usage,
				       (int)(width - g_utf8_strlen(usage, -1)),
				       "",
				       _(chat_commands[i].what));
	}
	g_string_append_printf(text,
			       "\n   %s",
			       _("Other lines are said in the current room; start a line "
				 "with “//” to say one that starts with “/”."));
	chat_status(chat, "%s", text->str);
}

static gboolean
chat_need_room(Chat *chat)
{
	if (chat->current != NULL)
		return TRUE;
	chat_status(chat, _("you are in no room: /join ROOM first"));
	return FALSE;
}

static void
chat_cmd_join(Chat *chat, const gchar *name)
{
	g_autoptr(GError) error = NULL;
	guint index;

	if (name == NULL || name[0] == '\0') {
		chat_status(chat, _("usage: /join ROOM"));
		return;
	}
	if (name[0] == '#')
		name++;
	if (!codechat_validate_room(name, &error)) {
		chat_status(chat, "%s", error->message);
		return;
	}
	g_free(chat->current);
	chat->current = g_strdup(name);
	chat_update_prompt(chat);
	if (chat_find_room(chat, name) != NULL) {
		chat_status(chat, _("now talking in #%s"), name);
		return;
	}
	chat_add_room(chat, name);
	if (chat_is_parted(chat, name, &index)) {
		/* the session still follows it: join it again ourselves */
		g_ptr_array_remove_index(chat->parted, index);
		if (chat->online)
			chat_simple_request(chat, OP_JOIN, "join", name);
		return;
	}
	/* joined at once when connected, else on the next connection */
	codechat_session_add_room(chat->session, name);
	chat_request_backlogs(chat);
}

static void
chat_cmd_part(Chat *chat, const gchar *arg)
{
	g_autofree gchar *name = NULL;
	ChatRoom *room;

	if (arg == NULL || arg[0] == '\0')
		name = g_strdup(chat->current);
	else
		name = g_strdup(arg[0] == '#' ? arg + 1 : arg);
	if (name == NULL) {
		chat_status(chat, _("you are in no room"));
		return;
	}
	room = chat_find_room(chat, name);
	if (room == NULL) {
		chat_status(chat, _("you are not in #%s"), name);
		return;
	}
	g_ptr_array_add(chat->parted, g_strdup(name));
	g_hash_table_replace(chat->left_at,
			     g_strdup(name),
			     g_memdup2(&room->shown_id, sizeof(room->shown_id)));
	if (chat->online)
		chat_simple_request(chat, OP_PART, "part", name);
	else
		chat_status(chat, _("left #%s"), name);
	if (g_strcmp0(chat->current, name) == 0) {
		g_clear_pointer(&chat->current, g_free);
		g_ptr_array_remove(chat->rooms, room);
		if (chat->rooms->len > 0) {
			ChatRoom *last = g_ptr_array_index(chat->rooms, chat->rooms->len - 1);

			chat->current = g_strdup(last->name);
			chat_status(chat, _("now talking in #%s"), last->name);
		}
		chat_update_prompt(chat);
	} else {
		g_ptr_array_remove(chat->rooms, room);
	}
}

static void
chat_cmd_msg(Chat *chat, const gchar *args)
{
	g_auto(GStrv) parts = NULL;
	g_autoptr(GError) error = NULL;

	parts = g_strsplit(args != NULL ? args : "", " ", 2);
	if (parts[0] == NULL || parts[0][0] == '\0' || parts[1] == NULL ||
	    g_strstrip(parts[1])[0] == '\0') {
		chat_status(chat, _("usage: /msg NICK TEXT"));
		return;
	}
	if (!codechat_validate_nick(parts[0], &error)) {
		chat_status(chat, "%s", error->message);
		return;
	}
	chat_say(chat, NULL, NULL, parts[0], parts[1], NULL);
}

static void
chat_cmd_history(Chat *chat, const gchar *arg)
{
	g_autoptr(JsonObject) request = NULL;
	guint64 n = codechat_application_get_history_limit(chat->app);

	if (arg != NULL && arg[0] != '\0' &&
	    (!g_ascii_string_to_unsigned(arg, 10, 1, CODECHAT_MAX_PAGE, &n, NULL))) {
		chat_status(chat, _("usage: /history [N], N from 1 to %d"), CODECHAT_MAX_PAGE);
		return;
	}
	if (!chat_need_room(chat))
		return;
	request = codechat_cmd_request_new("history");
	json_object_set_string_member(request, "room", chat->current);
	json_object_set_int_member(request, "limit", (gint64)MIN(n, CODECHAT_MAX_PAGE));
	chat_send(chat, chat_op_new(chat, OP_HISTORY, chat->current, request));
}

static void
chat_cmd_code(Chat *chat, const gchar *lang)
{
	if (lang != NULL && strlen(lang) > CODECHAT_MAX_LANG) {
		chat_status(chat, _("the language is too long"));
		return;
	}
	if (!chat_need_room(chat))
		return;
	chat->code = g_string_new(NULL);
	chat->code_lang = lang != NULL && lang[0] != '\0' ? g_strdup(lang) : NULL;
	chat_status(chat, _("type the snippet; end it with a line with a single “.”"));
	chat_update_prompt(chat);
}

/* the /code block is complete: send it */
static void
chat_end_code(Chat *chat)
{
	g_autoptr(GString) code = g_steal_pointer(&chat->code);
	g_autofree gchar *lang = g_steal_pointer(&chat->code_lang);

	chat_update_prompt(chat);
	if (code->len == 0) {
		chat_status(chat, _("the snippet is empty: not sent"));
		return;
	}
	if (chat->current == NULL) {
		chat_need_room(chat);
		return;
	}
	chat_say(chat, "code", chat->current, NULL, code->str, lang);
}

static void
chat_quit(Chat *chat)
{
	chat->quitting = TRUE;
	chat_maybe_stop(chat);
}

static void
chat_handle_command(Chat *chat, const gchar *line)
{
	g_autofree gchar *name = NULL;
	g_autofree gchar *args = NULL;
	const gchar *space = strchr(line, ' ');

	if (space != NULL) {
		name = g_strndup(line + 1, space - line - 1);
		args = g_strstrip(g_strdup(space + 1));
	} else {
		name = g_strdup(line + 1);
	}
	if (g_strcmp0(name, "join") == 0) {
		chat_cmd_join(chat, args);
	} else if (g_strcmp0(name, "part") == 0 || g_strcmp0(name, "leave") == 0) {
		chat_cmd_part(chat, args);
	} else if (g_strcmp0(name, "me") == 0) {
		if (args == NULL || args[0] == '\0')
			chat_status(chat, _("usage: /me ACTION"));
		else if (chat_need_room(chat))
			chat_say(chat, "action", chat->current, NULL, args, NULL);
	} else if (g_strcmp0(name, "msg") == 0) {
		chat_cmd_msg(chat, args);
	} else if (g_strcmp0(name, "who") == 0 || g_strcmp0(name, "names") == 0) {
		const gchar *room = args != NULL && args[0] != '\0' ? args : chat->current;

		if (room != NULL && room[0] == '#')
			room++;
		if (room == NULL)
			chat_need_room(chat);
		else
			chat_simple_request(chat, OP_WHO, "who", room);
	} else if (g_strcmp0(name, "rooms") == 0 || g_strcmp0(name, "list") == 0) {
		chat_simple_request(chat, OP_ROOMS, "rooms", NULL);
	} else if (g_strcmp0(name, "history") == 0) {
		chat_cmd_history(chat, args);
	} else if (g_strcmp0(name, "code") == 0) {
		chat_cmd_code(chat, args);
	} else if (g_strcmp0(name, "help") == 0) {
		chat_help(chat);
	} else if (g_strcmp0(name, "quit") == 0 || g_strcmp0(name, "exit") == 0) {
		chat_quit(chat);
	} else {
		g_autofree gchar *safe = codechat_output_sanitize(name);

		chat_status(chat, _("unknown command “/%s”: /help lists the commands"), safe);
	}
}

/* one line of input, without its newline */
static void
chat_handle_line(Chat *chat, const gchar *line)
{
	if (chat->code != NULL) {
		if (g_strcmp0(line, ".") == 0) {
			chat_end_code(chat);
			return;
		}
		if (chat->code->len > 0)
			g_string_append_c(chat->code, '\n');
		g_string_append(chat->code, line);
		return;
	}
	if (line[0] == '\0')
		return;
	if (line[0] == '/' && line[1] == '/') {
		if (chat_need_room(chat))
			chat_say(chat, NULL, chat->current, NULL, line + 1, NULL);
		return;
	}
	if (line[0] == '/') {
		chat_handle_command(chat, line);
		return;
	}
	if (chat_need_room(chat))
		chat_say(chat, NULL, chat->current, NULL, line, NULL);
}

/* the end of the input: what was typed of a snippet is sent, then quit */
static void
chat_handle_eof(Chat *chat)
{
	if (chat->code != NULL)
		chat_end_code(chat);
	chat_quit(chat);
}

/* input */

static gboolean
chat_line_cb(const gchar *line, gpointer user_data)
{
	Chat *chat = user_data;
	gboolean in_code = chat->code != NULL;

	if (line == NULL) {
		chat_handle_eof(chat);
		return FALSE;
	}
	if (chat->quitting || chat->stopping)
		return FALSE;
	chat_handle_line(chat, line);
	/* /code, /join… change it */
	chat_update_prompt(chat);
	/* the lines of a snippet are not for up-arrow */
	return !in_code;
}

static const gchar *const command_names[] = {
    "/code",
    "/help",
    "/history",
    "/join",
    "/me",
    "/msg",
    "/part",
    "/quit",
    "/rooms",
    "/who",
};

static gint
compare_strings(gconstpointer a, gconstpointer b)
{
	return g_strcmp0(*(const gchar *const *)a, *(const gchar *const *)b);
}

/* Tab: commands at the start of the line, rooms after /join and /part,
 * else nicks */
static GPtrArray *
chat_complete_cb(const gchar *line, const gchar *text, gint start, gpointer user_data)
{
	Chat *chat = user_data;
	GPtrArray *all = g_ptr_array_new_with_free_func(g_free);
	GPtrArray *matches = g_ptr_array_new_with_free_func(g_free);
	gboolean want_room =
	    start > 0 && (g_str_has_prefix(line, "/join ") || g_str_has_prefix(line, "/part "));

	if (start == 0 && text[0] == '/') {
		for (gsize i = 0; i < G_N_ELEMENTS(command_names); i++)
			g_ptr_array_add(all, g_strdup(command_names[i]));
	} else if (want_room) {
		for (guint i = 0; i < chat->rooms->len; i++) {
			ChatRoom *room = g_ptr_array_index(chat->rooms, i);
			g_ptr_array_add(all, g_strdup(room->name));
		}
		for (guint i = 0; i < chat->parted->len; i++)
			g_ptr_array_add(all, g_strdup(g_ptr_array_index(chat->parted, i)));
	} else {
		GHashTableIter iter;
		gpointer nick;

		g_hash_table_iter_init(&iter, chat->nicks);
		while (g_hash_table_iter_next(&iter, &nick, NULL))
			g_ptr_array_add(all, g_strdup(nick));
	}
	g_ptr_array_sort(all, compare_strings);
	for (guint i = 0; i < all->len; i++) {
		const gchar *candidate = g_ptr_array_index(all, i);

		if (g_str_has_prefix(candidate, text))
			g_ptr_array_add(matches, g_strdup(candidate));
	}
	g_ptr_array_unref(all);
	return matches;
}

/* the end */

static void
chat_closed_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	Chat *chat = user_data;

	codechat_session_close_finish(CODECHAT_SESSION(source), result, NULL);
	codechat_application_finish(chat->app, g_steal_pointer(&chat->error));
	chat_unref(chat);
}

/* ends the command: quit (@error NULL, exit 0) or a failure; takes @error */
static void
chat_stop(Chat *chat, GError *error)
{
	ChatOp *op;

	if (chat->stopping) {
		g_clear_error(&error);
		return;
	}
	chat->stopping = TRUE;
	chat->error = error;
	codechat_chat_input_stop(chat->input);
	g_clear_handle_id(&chat->sigint_id, g_source_remove);
	g_clear_handle_id(&chat->sigterm_id, g_source_remove);
	g_clear_handle_id(&chat->sighup_id, g_source_remove);
	if (!g_queue_is_empty(&chat->outbox) && !chat->quitting) {
		/* a signal: what was typed offline is lost, and said so */
		guint unsent = g_queue_get_length(&chat->outbox);
		chat_status(chat,
			    g_dngettext(GETTEXT_PACKAGE,
					"not connected: %u message was not sent",
					"not connected: %u messages were not sent",
					unsent),
			    unsent);
	}
	while ((op = g_queue_pop_head(&chat->outbox)) != NULL)
		chat_op_free(op);
	g_signal_handlers_disconnect_by_data(chat->session, chat);
	/* the main reference, released in chat_closed_cb */
	codechat_session_close_async(chat->session, chat_closed_cb, chat);
}

/* after a quit: stop once what was sent is answered, or cannot be */
static void
chat_maybe_stop(Chat *chat)
{
	guint unsent;

	if (!chat->quitting || chat->stopping)
		return;
	codechat_chat_input_stop(chat->input);
	if (chat->in_flight > 0)
		return;
	unsent = g_queue_get_length(&chat->outbox);
	if (unsent > 0 && !chat->online) {
		/* before the first connection, its failure ends the wait */
		if (!chat->ever_online)
			return;
		chat_status(chat,
			    g_dngettext(GETTEXT_PACKAGE,
					"not connected: %u message was not sent",
					"not connected: %u messages were not sent",
					unsent),
			    unsent);
	}
	if (unsent > 0 && chat->online)
		return;
	chat_stop(chat, NULL);
}

/* session signals */

static void
chat_session_message_cb(CodechatSession *session, JsonObject *message, gpointer user_data)
{
	chat_handle_message(user_data, message);
}

static void
chat_session_frame_cb(CodechatSession *session, JsonObject *frame, gpointer user_data)
{
	Chat *chat = user_data;
	const gchar *type = codechat_cmd_get_string(frame, "type");

	if (g_strcmp0(type, "presence") == 0) {
		const gchar *room = codechat_cmd_get_string(frame, "room");
		const gchar *event = codechat_cmd_get_string(frame, "event");
		g_autofree gchar *nick =
		    codechat_output_sanitize(codechat_cmd_get_string(frame, "nick"));

		if (room == NULL || chat_find_room(chat, room) == NULL)
			return;
		chat_add_nick(chat, codechat_cmd_get_string(frame, "nick"));
		/* --quiet: the talk, not the comings and goings */
		if (codechat_application_get_quiet(chat->app))
			return;
		if (g_strcmp0(event, "join") == 0)
			chat_status(chat, _("%s joined #%s"), nick, room);
		else if (g_strcmp0(event, "part") == 0)
			chat_status(chat, _("%s left #%s"), nick, room);
		else if (g_strcmp0(event, "quit") == 0)
			chat_status(chat, _("%s quit, leaving #%s"), nick, room);
	} else if (g_strcmp0(type, "error") == 0) {
		const gchar *code = codechat_cmd_get_string(frame, "code");
		const gchar *message = codechat_cmd_get_string(frame, "message");
		g_autofree gchar *safe =
		    codechat_output_sanitize(message != NULL ? message : "error");

		chat_status(chat, "%s (%s)", safe, code != NULL ? code : "internal");
	} else {
		g_debug("%s frame", type != NULL ? type : "typeless");
	}
}

static void
chat_session_notice_cb(CodechatSession *session, const gchar *text, gpointer user_data)
{
	Chat *chat = user_data;

	if (chat->online && codechat_session_get_connection(session) == NULL) {
		chat->online = FALSE;
		/* a script's next line waits for the next connection */
		codechat_chat_input_set_paused(chat->input, TRUE);
		chat_update_prompt(chat);
	}
	chat_status(chat, "%s", text);
	chat_maybe_stop(chat);
}

static void
chat_session_ready_cb(CodechatSession *session, gpointer user_data)
{
	Chat *chat = user_data;
	g_autoptr(GString) rooms = g_string_new(NULL);

	chat->online = TRUE;
	for (guint i = 0; i < chat->rooms->len; i++) {
		ChatRoom *room = g_ptr_array_index(chat->rooms, i);

		g_string_append_printf(rooms, "%s#%s", i > 0 ? ", " : "", room->name);
	}
	if (!chat->ever_online) {
		chat->ever_online = TRUE;
		chat_status(chat,
			    _("connected to %s as %s; /help lists the commands"),
			    codechat_application_get_server(chat->app),
			    codechat_application_get_nick(chat->app));
	} else if (rooms->len > 0) {
		chat_status(chat, _("reconnected to %s"), rooms->str);
	} else {
		chat_status(chat, _("reconnected"));
	}
	chat_update_prompt(chat);
	/* the session joined again what we left */
	for (guint i = 0; i < chat->parted->len; i++)
		chat_simple_request(chat,
				    OP_QUIET_PART,
				    "part",
				    g_ptr_array_index(chat->parted, i));
	chat_request_backlogs(chat);
	chat_flush_outbox(chat);
	codechat_chat_input_set_paused(chat->input, FALSE);
	chat_maybe_stop(chat);
}

static void
chat_session_failed_cb(CodechatSession *session, const GError *error, gpointer user_data)
{
	Chat *chat = user_data;

	chat_stop(chat, g_error_copy(error));
}

static gboolean
chat_signal_cb(gpointer user_data)
{
	Chat *chat = user_data;

	g_info("interrupted: closing the connection");
	chat_stop(chat, NULL);
	return G_SOURCE_REMOVE;
}

void
codechat_cmd_chat(CodechatApplication *app)
{
	g_auto(GStrv) args = NULL;
	g_autofree gchar *room = NULL;
	g_autofree gchar *prompt = NULL;
	g_autoptr(GError) error = NULL;
	CodechatNotifyMode notify_mode;
	CodechatOutput *output;
	Chat *chat;
	const GOptionEntry entries[] = {
	    {"room",
	     'r',
	     0,
	     G_OPTION_ARG_STRING,
	     &room,
	     N_("Room to start in (default: general, or $CODECHAT_ROOM)"),
	     N_("ROOM")},
	    {NULL},
	};

	if (!codechat_application_parse_options(app, entries, FALSE, &args))
		return;
	if (!codechat_application_check_no_args(app, args))
		return;
	output = codechat_application_get_output(app);
	if (codechat_output_is_json(output)) {
		codechat_application_finish(
		    app,
		    g_error_new_literal(CODECHAT_ERROR,
					CODECHAT_ERROR_INVALID_ARGUMENT,
					_("chat is for people: --json is not "
					  "supported; use watch and send")));
		return;
	}
	if (room == NULL)
		room = g_strdup(codechat_application_get_default_room(app));
	if (room[0] == '#')
		memmove(room, room + 1, strlen(room));
	if (!codechat_validate_room(room, &error)) {
		codechat_application_finish(app,
					    g_error_new_literal(CODECHAT_ERROR,
								CODECHAT_ERROR_INVALID_ARGUMENT,
								error->message));
		return;
	}

	chat = g_rc_box_new0(Chat);
	chat->app = app;
	chat->output = output;
	codechat_output_set_nick_colors(output, TRUE);
	chat->rooms = g_ptr_array_new_with_free_func((GDestroyNotify)chat_room_free);
	chat->parted = g_ptr_array_new_with_free_func(g_free);
	chat->left_at = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, g_free);
	chat->nicks = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
	g_queue_init(&chat->outbox);
	chat->current = g_strdup(room);
	chat_add_room(chat, room);

	notify_mode = codechat_application_get_notify_mode(app);
	if (notify_mode != CODECHAT_NOTIFY_OFF) {
		chat->notifier =
		    codechat_notifier_new(notify_mode, codechat_application_get_nick(app));
		g_signal_connect(chat->notifier,
				 "unavailable",
				 G_CALLBACK(chat_notifier_unavailable_cb),
				 chat);
	}

	chat->session = codechat_application_new_session(app);
	codechat_session_add_room(chat->session, room);
	g_signal_connect(chat->session, "message", G_CALLBACK(chat_session_message_cb), chat);
	g_signal_connect(chat->session, "frame", G_CALLBACK(chat_session_frame_cb), chat);
	g_signal_connect(chat->session, "notice", G_CALLBACK(chat_session_notice_cb), chat);
	g_signal_connect(chat->session, "ready", G_CALLBACK(chat_session_ready_cb), chat);
	g_signal_connect(chat->session, "failed", G_CALLBACK(chat_session_failed_cb), chat);
	chat->sigint_id = g_unix_signal_add(SIGINT, chat_signal_cb, chat);
	chat->sigterm_id = g_unix_signal_add(SIGTERM, chat_signal_cb, chat);
	chat->sighup_id = g_unix_signal_add(SIGHUP, chat_signal_cb, chat);

	chat->input = codechat_chat_input_new(chat_line_cb, chat_complete_cb, chat);
	prompt = chat_make_prompt(chat);
	codechat_chat_input_start(chat->input, prompt);
	codechat_session_start(chat->session);
}
