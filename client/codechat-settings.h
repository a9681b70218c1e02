/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/* the GSettings keys of io.github.codechat.Codechat */
#define CODECHAT_SETTINGS_SERVER_URL	"server-url"
#define CODECHAT_SETTINGS_NICKNAME	"nickname"
#define CODECHAT_SETTINGS_DEFAULT_ROOM	"default-room"
#define CODECHAT_SETTINGS_NOTIFY	"notify"
#define CODECHAT_SETTINGS_COLOR		"color"
#define CODECHAT_SETTINGS_HISTORY_LIMIT "history-limit"

GSettings *
codechat_settings_get(void);
GStrv
codechat_settings_list_keys(GSettings *settings);
gboolean
codechat_settings_check_key(GSettings *settings, const gchar *key, GError **error);
gboolean
codechat_settings_check_writable(GSettings *settings, GError **error);
gchar *
codechat_settings_get_string(const gchar *key);
gboolean
codechat_settings_set(GSettings *settings, const gchar *key, GVariant *value, GError **error);
gboolean
codechat_settings_reset(GSettings *settings, const gchar *key, GError **error);
gboolean
codechat_settings_get_uint(const gchar *key, guint *value);

gboolean
codechat_settings_check_server_url(const gchar *value, gchar **normalized, GError **error);
GVariant *
codechat_settings_parse_value(GSettings *settings,
			      const gchar *key,
			      const gchar *text,
			      GError **error);
gchar *
codechat_settings_value_to_string(GVariant *value);

/* where a token was found or saved */
typedef enum {
	CODECHAT_TOKEN_SOURCE_NONE,
	CODECHAT_TOKEN_SOURCE_ENVIRONMENT,
	CODECHAT_TOKEN_SOURCE_KEYRING,
	CODECHAT_TOKEN_SOURCE_FILE,
} CodechatTokenSource;

gchar *
codechat_token_file_path(void);
gchar *
codechat_token_lookup(const gchar *server, const gchar *nick, CodechatTokenSource *source);
gboolean
codechat_token_store(const gchar *server,
		     const gchar *nick,
		     const gchar *token,
		     CodechatTokenSource *where,
		     GError **error);

G_END_DECLS
