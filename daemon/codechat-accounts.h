/* SPDX-License-Identifier: GPL-3.0-or-later */
#pragma once

#include <gio/gio.h>

G_BEGIN_DECLS

/*
 * CodechatAccounts: the nicks that have a token, in DATA_DIR/accounts.
 *
 * The file is a GKeyFile with one group, [accounts], of nick=sha256:HEX
 * entries; only the hash of each token is stored.  `codechatd user` edits
 * it while a daemon may run on the same data dir (the daemon's own lock
 * and database are not involved); the daemon re-reads it when it changed
 * and emits ::changed.
 */
#define CODECHAT_TYPE_ACCOUNTS (codechat_accounts_get_type())
G_DECLARE_FINAL_TYPE(CodechatAccounts, codechat_accounts, CODECHAT, ACCOUNTS, GObject)

CodechatAccounts *
codechat_accounts_new(const gchar *data_dir);
const gchar *
codechat_accounts_get_path(CodechatAccounts *self);
gboolean
codechat_accounts_load(CodechatAccounts *self, GError **error);
gboolean
codechat_accounts_watch(CodechatAccounts *self, GError **error);
gboolean
codechat_accounts_refresh(CodechatAccounts *self);

guint
codechat_accounts_get_n_accounts(CodechatAccounts *self);
GStrv
codechat_accounts_list(CodechatAccounts *self);
const gchar *
codechat_accounts_lookup_hash(CodechatAccounts *self, const gchar *nick);
const gchar *
codechat_accounts_authenticate(CodechatAccounts *self, const gchar *nick, const gchar *token);

gchar *
codechat_accounts_add(CodechatAccounts *self, const gchar *nick, GError **error);
gboolean
codechat_accounts_remove(CodechatAccounts *self, const gchar *nick, GError **error);

G_END_DECLS
