/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <json-glib/json-glib.h>

G_BEGIN_DECLS

typedef enum {
	CODECHAT_COLOR_AUTO,
	CODECHAT_COLOR_ALWAYS,
	CODECHAT_COLOR_NEVER,
} CodechatColorMode;

gboolean
codechat_color_mode_from_string(const gchar *str, CodechatColorMode *mode);

/* how the client prints what the server sent: plain lines for people, or
 * one JSON object a line for scripts (--json) */
typedef struct _CodechatOutput CodechatOutput;

CodechatOutput *
codechat_output_new(gboolean json, CodechatColorMode color);
void
codechat_output_free(CodechatOutput *self);
gboolean
codechat_output_is_json(CodechatOutput *self);
gboolean
codechat_output_use_color(CodechatOutput *self);
void
codechat_output_set_nick_colors(CodechatOutput *self, gboolean nick_colors);
const gchar *
codechat_output_nick_color(const gchar *nick);

gchar *
codechat_output_sanitize(const gchar *text);
gchar *
codechat_output_format_message(CodechatOutput *self, JsonObject *message);
void
codechat_output_message(CodechatOutput *self, JsonObject *message);
gchar *
codechat_output_format_room(CodechatOutput *self, JsonObject *room);
void
codechat_output_room(CodechatOutput *self, JsonObject *room);
void
codechat_output_member(CodechatOutput *self, const gchar *room, const gchar *nick);
void
codechat_output_status(CodechatOutput *self, JsonObject *status);
void
codechat_output_json(CodechatOutput *self, JsonObject *obj);

G_DEFINE_AUTOPTR_CLEANUP_FUNC(CodechatOutput, codechat_output_free)

G_END_DECLS
