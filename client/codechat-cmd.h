/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <json-glib/json-glib.h>

#include "codechat-application.h"
#include "codechat-protocol.h"

G_BEGIN_DECLS

/* one entry point per subcommand, client/codechat-cmd-<name>.c; each
 * parses its options with codechat_application_parse_options() and ends,
 * once, with codechat_application_finish() */
typedef void (*CodechatCommandFunc)(CodechatApplication *app);

typedef struct {
	const gchar *name;
	const gchar *parameter_string; /* (nullable) after the options */
	const gchar *summary;
	const gchar *description; /* (nullable) */
	CodechatCommandFunc run;
} CodechatCommand;

void
codechat_cmd_send(CodechatApplication *app);
void
codechat_cmd_history(CodechatApplication *app);
void
codechat_cmd_watch(CodechatApplication *app);
void
codechat_cmd_rooms(CodechatApplication *app);
void
codechat_cmd_who(CodechatApplication *app);
void
codechat_cmd_status(CodechatApplication *app);
void
codechat_cmd_chat(CodechatApplication *app);
void
codechat_cmd_config(CodechatApplication *app);
void
codechat_cmd_init(CodechatApplication *app);

/* helpers for the commands, client/codechat-cmd.c */
const gchar *
codechat_cmd_get_string(JsonObject *obj, const gchar *name);
gboolean
codechat_cmd_get_int(JsonObject *obj, const gchar *name, gint64 *value);
gboolean
codechat_cmd_get_bool(JsonObject *obj, const gchar *name);
JsonArray *
codechat_cmd_get_array(JsonObject *obj, const gchar *name);
JsonObject *
codechat_cmd_get_object(JsonObject *obj, const gchar *name);
GError *
codechat_cmd_bad_reply_error(JsonObject *reply, const gchar *expected);
JsonObject *
codechat_cmd_request_new(const gchar *type);

/* connect, ask for the rooms, hand them to @func, then close and finish */
typedef void (*CodechatCmdRoomsFunc)(CodechatApplication *app,
				     CodechatConnection *conn,
				     JsonArray *rooms);
void
codechat_cmd_run_rooms(CodechatApplication *app, CodechatCmdRoomsFunc func);

G_END_DECLS
