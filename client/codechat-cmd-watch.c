/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib-unix.h>
#include <glib/gi18n.h>
#include <signal.h>

#include "codechat-cmd.h"
#include "codechat-log.h"
#include "codechat-notify.h"
#include "codechat-session.h"

/* codechat watch [--room R]… [--notify]
 *
 * Follows the rooms and prints every message as it arrives until SIGINT
 * or SIGTERM, which close the session with 1000 and exit 0.  The
 * CodechatSession reconnects after a drop or a daemon restart and
 * resumes each room where it left off: nothing is lost, nothing printed
 * twice, and what happens is said on stderr (unless --quiet).  With
 * --notify, every message printed also goes to a notifier that shows
 * mentions of our nick and direct messages to us on the desktop. */

typedef struct {
	CodechatApplication *app;   /* (unowned) held until finished */
	CodechatSession *session;   /* (owned) */
	CodechatNotifier *notifier; /* (owned) (nullable) without --notify */
	GError *error;		    /* (owned) (nullable) why it stopped */
	guint sigint_id;	    /* GSource id, 0 if none */
	guint sigterm_id;	    /* GSource id, 0 if none */
	gboolean stopping;
} WatchState;

static void
watch_state_free(WatchState *state)
{
	g_assert(state->sigint_id == 0 && state->sigterm_id == 0);
	if (state->session != NULL)
		g_signal_handlers_disconnect_by_data(state->session, state);
	g_clear_object(&state->session);
	g_clear_object(&state->notifier);
	g_clear_error(&state->error);
	g_free(state);
}

G_DEFINE_AUTOPTR_CLEANUP_FUNC(WatchState, watch_state_free)

static void
session_closed_cb(GObject *source, GAsyncResult *result, gpointer user_data)
{
	g_autoptr(WatchState) state = user_data;

	codechat_session_close_finish(CODECHAT_SESSION(source), result, NULL);
	codechat_application_finish(state->app, g_steal_pointer(&state->error));
}

/* ends the command: on a signal (@error NULL, exit 0) or a failure;
 * takes @error */
static void
watch_stop(WatchState *state, GError *error)
{
	if (state->stopping) {
		g_clear_error(&error);
		return;
	}
	state->stopping = TRUE;
	state->error = error;
	g_clear_handle_id(&state->sigint_id, g_source_remove);
	g_clear_handle_id(&state->sigterm_id, g_source_remove);
	g_signal_handlers_disconnect_by_data(state->session, state);
	codechat_session_close_async(state->session, session_closed_cb, state);
}

static gboolean
signal_cb(gpointer user_data)
{
	WatchState *state = user_data;

	g_info("interrupted: closing the connection");
	watch_stop(state, NULL);
	return G_SOURCE_REMOVE;
}

static void
message_cb(CodechatSession *session, JsonObject *message, gpointer user_data)
{
	WatchState *state = user_data;

	codechat_output_message(codechat_application_get_output(state->app), message);
	if (state->notifier != NULL) {
		g_autoptr(GError) error = NULL;
		g_autoptr(CodechatMessage) msg = codechat_message_from_json(message, &error);

		if (msg == NULL)
			codechat_debug(
			    CODECHAT_LOG_FIELDS(.room = codechat_cmd_get_string(message, "room")),
			    "not notifying: %s",
			    error->message);
		else
			codechat_notifier_handle(state->notifier, msg);
	}
}

static void
frame_cb(CodechatSession *session, JsonObject *frame, gpointer user_data)
{
	WatchState *state = user_data;
	const gchar *type = codechat_cmd_get_string(frame, "type");

	if (g_strcmp0(type, "error") == 0) {
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
notice_cb(CodechatSession *session, const gchar *text, gpointer user_data)
{
	WatchState *state = user_data;

	codechat_application_note(state->app, "%s", text);
}

static void
failed_cb(CodechatSession *session, const GError *error, gpointer user_data)
{
	WatchState *state = user_data;

	watch_stop(state, g_error_copy(error));
}

/* the user asked for notifications (--notify or the setting): say once
 * that they cannot be shown, rather than nothing but under -v */
static void
notifier_unavailable_cb(CodechatNotifier *notifier, const gchar *reason, gpointer user_data)
{
	WatchState *state = user_data;

	codechat_application_note(state->app,
				  _("desktop notifications are unavailable: %s"),
				  reason);
}

/* --notify and --notify=MODE */
static gchar *notify_option = NULL;
static gboolean notify_bare = FALSE;

static gboolean
parse_notify_cb(const gchar *name, const gchar *value, gpointer data, GError **error)
{
	g_free(notify_option);
	notify_option = g_strdup(value);
	notify_bare = value == NULL;
	return TRUE;
}

void
codechat_cmd_watch(CodechatApplication *app)
{
	g_auto(GStrv) args = NULL;
	g_auto(GStrv) rooms = NULL;
	CodechatNotifyMode mode;
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
	     G_OPTION_FLAG_OPTIONAL_ARG,
	     G_OPTION_ARG_CALLBACK,
	     parse_notify_cb,
	     N_("Also show desktop notifications: of mentions and direct messages, or "
		"of every message with --notify=all (default: the notify setting)"),
	     N_("MODE")},
	    {NULL},
	};

	if (!codechat_application_parse_options(app, entries, FALSE, &args))
		return;
	if (!codechat_application_check_no_args(app, args))
		return;

	/* --notify[=MODE], then CODECHAT_NOTIFY and the notify setting; a bare
	 * --notify means the setting's mode, or mentions when that is off */
	mode = codechat_application_get_notify_mode(app);
	if (notify_option != NULL) {
		if (!codechat_notify_mode_from_string(notify_option, &mode)) {
			codechat_application_finish(
			    app,
			    g_error_new(CODECHAT_ERROR,
					CODECHAT_ERROR_INVALID_ARGUMENT,
					_("--notify must be off, mentions or all, not “%s”"),
					notify_option));
			g_clear_pointer(&notify_option, g_free);
			return;
		}
		g_clear_pointer(&notify_option, g_free);
	} else if (notify_bare && mode == CODECHAT_NOTIFY_OFF) {
		mode = CODECHAT_NOTIFY_MENTIONS;
	}

	state = g_new0(WatchState, 1);
	state->app = app;
	if (mode != CODECHAT_NOTIFY_OFF) {
		state->notifier = codechat_notifier_new(mode, codechat_application_get_nick(app));
		g_signal_connect(state->notifier,
				 "unavailable",
				 G_CALLBACK(notifier_unavailable_cb),
				 state);
	}
	state->session = codechat_application_new_session(app);
	for (guint i = 0; rooms != NULL && rooms[i] != NULL; i++)
		codechat_session_add_room(state->session, rooms[i]);
	if (rooms == NULL || rooms[0] == NULL)
		codechat_session_add_room(state->session,
					  codechat_application_get_default_room(app));
	g_signal_connect(state->session, "message", G_CALLBACK(message_cb), state);
	g_signal_connect(state->session, "frame", G_CALLBACK(frame_cb), state);
	g_signal_connect(state->session, "notice", G_CALLBACK(notice_cb), state);
	g_signal_connect(state->session, "failed", G_CALLBACK(failed_cb), state);
	state->sigint_id = g_unix_signal_add(SIGINT, signal_cb, state);
	state->sigterm_id = g_unix_signal_add(SIGTERM, signal_cb, state);
	codechat_session_start(state->session);
}
