/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-fuzz"

#include "config.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "codechat-config.h"
#include "codechat-log.h"
#include "codechat-notify.h"

/*
 * libFuzzer target: codechatd's config file, through the code that
 * codechatd runs on it (codechat_daemon_settings_resolve_paths() and
 * codechat_daemon_settings_resolve()) with no flags
 * and no CODECHATD_* variables, so that only the file decides.
 */

int
LLVMFuzzerInitialize(int *argc, char ***argv);
int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int
LLVMFuzzerInitialize(int *argc, char ***argv)
{
	g_auto(GStrv) env = g_get_environ();

	for (guint i = 0; env[i] != NULL; i++) {
		if (g_str_has_prefix(env[i], "CODECHATD_")) {
			g_autofree gchar *name = g_strndup(env[i], strcspn(env[i], "="));
			g_unsetenv(name);
		}
	}
	return 0;
}

int
LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	g_autoptr(GKeyFile) file = g_key_file_new();
	g_auto(CodechatDaemonSettings) settings = {0};
	g_autoptr(GError) error = NULL;
	CodechatLogFormat format = CODECHAT_LOG_FORMAT_AUTO;
	CodechatNotifyMode mode = CODECHAT_NOTIFY_OFF;

	/* as g_key_file_load_from_file() after reading the file */
	if (!g_key_file_load_from_data(file, (const gchar *)data, size, G_KEY_FILE_NONE, &error))
		return 0;
	codechat_daemon_settings_init(&settings);
	if (!codechat_daemon_settings_resolve_paths(&settings, file, "fuzz.conf", &error) ||
	    !codechat_daemon_settings_resolve(&settings, file, "fuzz.conf", &error)) {
		g_assert_nonnull(error);
		g_assert_nonnull(error->message);
		return 0;
	}
	g_assert_no_error(error);

	/* what main() relies on once the settings are resolved */
	g_assert_nonnull(settings.listen);
	g_assert_nonnull(settings.data_dir);
	g_assert_nonnull(settings.sync);
	g_assert_nonnull(settings.notify);
	g_assert_true(g_strcmp0(settings.sync, "full") == 0 ||
		      g_strcmp0(settings.sync, "normal") == 0);
	g_assert_true(codechat_notify_mode_from_string(settings.notify, &mode));
	if (settings.log_format != NULL)
		g_assert_true(codechat_log_format_from_string(settings.log_format, &format));
	if (settings.nick != NULL)
		g_assert_true(codechat_validate_nick(settings.nick, NULL));
	g_assert_cmpuint(settings.config.hello_timeout, >=, 1);
	g_assert_cmpuint(settings.config.burst, >=, 1);
	for (guint i = 0; settings.allowed_origins != NULL && settings.allowed_origins[i] != NULL;
	     i++)
		g_assert_true(g_utf8_validate(settings.allowed_origins[i], -1, NULL));
	return 0;
}
