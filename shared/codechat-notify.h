/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

#include "codechat-protocol.h"

G_BEGIN_DECLS

/* the application ID: libnotify's app name and the desktop-entry hint */
#define CODECHAT_NOTIFY_APP_ID "io.github.codechat.Codechat"
/* default time in which one room gets at most one new notification */
#define CODECHAT_NOTIFY_DEFAULT_WINDOW_MS 5000
/* characters of message text in a notification's body */
#define CODECHAT_NOTIFY_MAX_BODY 200

typedef enum {
	CODECHAT_NOTIFY_OFF,
	CODECHAT_NOTIFY_MENTIONS,
	CODECHAT_NOTIFY_ALL,
} CodechatNotifyMode;

const gchar *
codechat_notify_mode_to_string(CodechatNotifyMode mode);
gboolean
codechat_notify_mode_from_string(const gchar *str, CodechatNotifyMode *mode);

gboolean
codechat_notify_is_mention(const gchar *text, const gchar *nick);
gchar *
codechat_notify_shorten(const gchar *text, guint max_chars);

#define CODECHAT_TYPE_NOTIFIER (codechat_notifier_get_type())
G_DECLARE_FINAL_TYPE(CodechatNotifier, codechat_notifier, CODECHAT, NOTIFIER, GObject)

CodechatNotifier *
codechat_notifier_new(CodechatNotifyMode mode, const gchar *nick);
CodechatNotifyMode
codechat_notifier_get_mode(CodechatNotifier *self);
const gchar *
codechat_notifier_get_nick(CodechatNotifier *self);
void
codechat_notifier_set_window_ms(CodechatNotifier *self, guint window_ms);
guint
codechat_notifier_get_window_ms(CodechatNotifier *self);
gboolean
codechat_notifier_wants(CodechatNotifier *self, const CodechatMessage *msg);
void
codechat_notifier_handle(CodechatNotifier *self, const CodechatMessage *msg);

G_END_DECLS
