/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

#include "codechat-connection.h"
#include "codechat-notify.h"
#include "codechat-output.h"
#include "codechat-session.h"

G_BEGIN_DECLS

/* replies normally take milliseconds; this only bounds a stuck server */
#define CODECHAT_REQUEST_TIMEOUT_S 30
/* messages a page of history, without --limit or the setting */
#define CODECHAT_DEFAULT_HISTORY_LIMIT 50

#define CODECHAT_TYPE_APPLICATION (codechat_application_get_type())
G_DECLARE_FINAL_TYPE(CodechatApplication, codechat_application, CODECHAT, APPLICATION, GApplication)

void
codechat_application_setup_logging(void);
CodechatApplication *
codechat_application_new(void);
gint
codechat_application_get_exit_status(CodechatApplication *self);

gboolean
codechat_application_parse_options(CodechatApplication *self,
				   const GOptionEntry *entries,
				   gboolean stop_at_first_argument,
				   GStrv *args);
gboolean
codechat_application_check_no_args(CodechatApplication *self, GStrv args);

const gchar *
codechat_application_get_command_name(CodechatApplication *self);
const gchar *
codechat_application_get_server(CodechatApplication *self);
const gchar *
codechat_application_get_nick(CodechatApplication *self);
const gchar *
codechat_application_get_default_room(CodechatApplication *self);
gboolean
codechat_application_get_quiet(CodechatApplication *self);
/* the `notify` setting (CODECHAT_NOTIFY, the GSettings key), for chat and
 * for watch without --notify */
CodechatNotifyMode
codechat_application_get_notify_mode(CodechatApplication *self);
const gchar *
codechat_application_get_server_option(CodechatApplication *self);
const gchar *
codechat_application_get_nick_option(CodechatApplication *self);
/* messages per page of history (the `history-limit` key; 50) */
guint
codechat_application_get_history_limit(CodechatApplication *self);
CodechatOutput *
codechat_application_get_output(CodechatApplication *self);
CodechatConnection *
codechat_application_new_connection(CodechatApplication *self);
CodechatSession *
codechat_application_new_session(CodechatApplication *self);

void
codechat_application_note(CodechatApplication *self, const gchar *format, ...) G_GNUC_PRINTF(2, 3);
void
codechat_application_finish(CodechatApplication *self, GError *error);
void
codechat_application_close_and_finish(CodechatApplication *self,
				      CodechatConnection *connection,
				      GError *error);

G_END_DECLS
