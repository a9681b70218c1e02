/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"
#include "codechat-log.h"

/* codechat history [--room R | --with NICK] [--limit N] [--before ID | --after ID]:
 * one page of a room's past messages, or of the direct conversation with
 * NICK, oldest first */

typedef struct {
	CodechatApplication *app; /* (unowned) held until finished */
	gchar *room;		  /* (owned) (nullable) */
	gchar *with;		  /* (owned) (nullable) instead of room */
	guint64 before;		  /* with has_before: older than this id */
	guint64 after;		  /* with has_after: newer than this id (0: the start) */
	guint limit;		  /* 0: the server's default */
	gboolean has_before;
	gboolean has_after;
} HistoryState;

static void
history_state_free(HistoryState *state)
{
	g_free(state->room);
	g_free(state->with);
	g_free(state);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(HistoryState, history_state_free)

static void
history_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(HistoryState) state = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	CodechatOutput *output = codechat_application_get_output(state->app);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) reply = NULL;
	JsonArray *messages;

	reply = codechat_connection_request_finish(conn, result, &error);
	if (reply == NULL) {
		codechat_application_close_and_finish(state->app, conn, g_steal_pointer(&error));
		return;
	}
	messages = codechat_cmd_get_array(reply, "messages");
	if (messages == NULL) {
		codechat_application_close_and_finish(
		    state->app,
		    conn,
		    codechat_cmd_bad_reply_error(reply, "history"));
		return;
	}
	for (guint i = 0; i < json_array_get_length(messages); i++) {
		JsonNode *node = json_array_get_element(messages, i);

		if (JSON_NODE_HOLDS_OBJECT(node))
			codechat_output_message(output, json_node_get_object(node));
	}
	codechat_debug(CODECHAT_LOG_FIELDS(.room = state->room),
		       "%u messages, %s",
		       json_array_get_length(messages),
		       codechat_cmd_get_bool(reply, "more") ? "more beyond the page" : "no more");
	codechat_application_close_and_finish(state->app, conn, NULL);
}

static void
connect_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(HistoryState) state = user_data;
	CodechatConnection *conn = CODECHAT_CONNECTION(source);
	g_autoptr(GError) error = NULL;
	g_autoptr(JsonObject) request = NULL;

	if (!codechat_connection_connect_finish(conn, result, &error)) {
		codechat_application_close_and_finish(state->app, conn, g_steal_pointer(&error));
		return;
	}
	request = codechat_cmd_request_new("history");
	if (state->with != NULL)
		json_object_set_string_member(request, "with", state->with);
	else
		json_object_set_string_member(request, "room", state->room);
	if (state->limit > 0)
		json_object_set_int_member(request, "limit", state->limit);
	if (state->has_before)
		json_object_set_int_member(request, "before", (gint64)state->before);
	if (state->has_after)
		json_object_set_int_member(request, "after", (gint64)state->after);
	codechat_connection_request_async(conn,
					  request,
					  CODECHAT_REQUEST_TIMEOUT_S,
					  history_cb,
					  g_steal_pointer(&state));
}

static gboolean
parse_number(const gchar *option,
	     const gchar *value,
	     guint64 min,
	     guint64 max,
	     guint64 *out,
	     GError **error)
{
	g_autoptr(GError) error_local = NULL;

	if (!g_ascii_string_to_unsigned(value, 10, min, max, out, &error_local)) {
		g_set_error(error,
			    CODECHAT_ERROR,
			    CODECHAT_ERROR_INVALID_ARGUMENT,
			    _("%s needs a number from %llu to %llu, not “%s”"),
			    option,
			    (unsigned long long)min,
			    (unsigned long long)max,
			    value);
		return FALSE;
	}
	return TRUE;
}

void
codechat_cmd_history(CodechatApplication *app)
{
	g_auto(GStrv) args = NULL;
	g_autofree gchar *room = NULL;
	g_autofree gchar *with = NULL;
	g_autofree gchar *limit = NULL;
	g_autofree gchar *before = NULL;
	g_autofree gchar *after = NULL;
	g_autoptr(CodechatConnection) conn = NULL;
	g_autoptr(HistoryState) state = NULL;
	g_autoptr(GError) error = NULL;
	guint64 value = 0;
	const GOptionEntry entries[] = {
	    {"room",
	     'r',
	     0,
	     G_OPTION_ARG_STRING,
	     &room,
	     N_("Room (default: general, or $CODECHAT_ROOM)"),
	     N_("ROOM")},
	    {"with",
	     'w',
	     0,
	     G_OPTION_ARG_STRING,
	     &with,
	     N_("The direct conversation with NICK instead"),
	     N_("NICK")},
	    {"limit",
	     'n',
	     0,
	     G_OPTION_ARG_STRING,
	     &limit,
	     N_("At most N messages (1 to 500; default 50)"),
	     N_("N")},
	    {"before",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &before,
	     N_("Only messages older than message ID"),
	     N_("ID")},
	    {"after",
	     0,
	     0,
	     G_OPTION_ARG_STRING,
	     &after,
	     N_("Only messages newer than message ID (0: from the start)"),
	     N_("ID")},
	    {NULL},
	};

	if (!codechat_application_parse_options(app, entries, FALSE, &args))
		return;
	if (!codechat_application_check_no_args(app, args))
		return;

	if (room != NULL && with != NULL) {
		codechat_application_finish(
		    app,
		    g_error_new_literal(CODECHAT_ERROR,
					CODECHAT_ERROR_INVALID_ARGUMENT,
					_("--room and --with cannot be used together")));
		return;
	}
	if (before != NULL && after != NULL) {
		codechat_application_finish(
		    app,
		    g_error_new_literal(CODECHAT_ERROR,
					CODECHAT_ERROR_INVALID_ARGUMENT,
					_("--before and --after cannot be used together")));
		return;
	}

	state = g_new0(HistoryState, 1);
	state->app = app;
	/* room and nick names are the server's to check (exit status 3) */
	if (with != NULL)
		state->with = g_steal_pointer(&with);
	else if (room != NULL)
		state->room = g_steal_pointer(&room);
	else
		state->room = g_strdup(codechat_application_get_default_room(app));
	if (limit != NULL) {
		if (!parse_number("--limit", limit, 1, CODECHAT_MAX_PAGE, &value, &error)) {
			codechat_application_finish(app, g_steal_pointer(&error));
			return;
		}
		state->limit = (guint)value;
	} else {
		/* CODECHAT_HISTORY_LIMIT, the history-limit setting, 50 */
		state->limit = codechat_application_get_history_limit(app);
	}
	if (before != NULL) {
		if (!parse_number("--before", before, 1, G_MAXINT64, &value, &error)) {
			codechat_application_finish(app, g_steal_pointer(&error));
			return;
		}
		state->before = value;
		state->has_before = TRUE;
	}
	if (after != NULL) {
		if (!parse_number("--after", after, 0, G_MAXINT64, &value, &error)) {
			codechat_application_finish(app, g_steal_pointer(&error));
			return;
		}
		state->after = value;
		state->has_after = TRUE;
	}
	conn = codechat_application_new_connection(app);
	codechat_connection_connect_async(conn, NULL, connect_cb, g_steal_pointer(&state));
}
