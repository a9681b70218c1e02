/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"
#include "codechat-settings.h"

/* codechat config list | get KEY | set KEY VALUE | reset KEY
 *
 * The settings in GSettings, checked before they are written: what
 * `gsettings` would do for the schema, with the protocol's rules for the
 * server URL, the nick and the room. */

static GError *
usage_error(const gchar *message)
{
	return g_error_new_literal(CODECHAT_ERROR, CODECHAT_ERROR_INVALID_ARGUMENT, message);
}

static void
print_value(CodechatApplication *app, GSettings *settings, const gchar *key, gboolean with_key)
{
	CodechatOutput *output = codechat_application_get_output(app);
	g_autoptr(GVariant) value = g_settings_get_value(settings, key);
	g_autofree gchar *text = codechat_settings_value_to_string(value);

	if (codechat_output_is_json(output)) {
		g_autoptr(JsonObject) obj = json_object_new();
		g_autoptr(GVariant) user = g_settings_get_user_value(settings, key);
		json_object_set_string_member(obj, "key", key);
		json_object_set_member(obj, "value", json_gvariant_serialize(value));
		json_object_set_boolean_member(obj, "default", user == NULL);
		codechat_output_json(output, obj);
	} else if (with_key) {
		g_print("%-14s %s\n", key, text);
	} else {
		g_print("%s\n", text);
	}
}

void
codechat_cmd_config(CodechatApplication *app)
{
	g_auto(GStrv) args = NULL;
	g_autoptr(GError) error = NULL;
	GSettings *settings;
	const gchar *verb;
	guint n_args;

	if (!codechat_application_parse_options(app, NULL, FALSE, &args))
		return;
	n_args = g_strv_length(args);
	if (n_args == 0) {
		codechat_application_finish(
		    app,
		    usage_error(_("config needs one of list, get KEY, set KEY VALUE, reset KEY")));
		return;
	}
	verb = args[0];
	if (g_strcmp0(verb, "list") == 0) {
		if (n_args != 1) {
			codechat_application_finish(app, usage_error(_("list takes no argument")));
			return;
		}
	} else if (g_strcmp0(verb, "get") == 0 || g_strcmp0(verb, "reset") == 0) {
		if (n_args != 2) {
			g_autofree gchar *message = g_strdup_printf(_("%s takes one KEY"), verb);
			codechat_application_finish(app, usage_error(message));
			return;
		}
	} else if (g_strcmp0(verb, "set") == 0) {
		if (n_args != 3) {
			codechat_application_finish(app,
						    usage_error(_("set takes a KEY and a VALUE")));
			return;
		}
	} else {
		g_autofree gchar *message =
		    g_strdup_printf(_("unknown config action “%s” (list, get, set, reset)"), verb);
		codechat_application_finish(app, usage_error(message));
		return;
	}

	settings = codechat_settings_get();
	if (settings == NULL) {
		codechat_settings_check_writable(settings, &error);
		codechat_application_finish(app, g_steal_pointer(&error));
		return;
	}

	if (g_strcmp0(verb, "list") == 0) {
		g_auto(GStrv) keys = codechat_settings_list_keys(settings);
		for (guint i = 0; keys[i] != NULL; i++)
			print_value(app, settings, keys[i], TRUE);
		codechat_application_finish(app, NULL);
		return;
	}
	if (!codechat_settings_check_key(settings, args[1], &error)) {
		codechat_application_finish(app, g_steal_pointer(&error));
		return;
	}
	if (g_strcmp0(verb, "get") == 0) {
		print_value(app, settings, args[1], FALSE);
		codechat_application_finish(app, NULL);
		return;
	}

	if (!codechat_settings_check_writable(settings, &error)) {
		codechat_application_finish(app, g_steal_pointer(&error));
		return;
	}
	if (g_strcmp0(verb, "set") == 0) {
		g_autoptr(GVariant) value =
		    codechat_settings_parse_value(settings, args[1], args[2], &error);
		if (value == NULL) {
			codechat_application_finish(app, g_steal_pointer(&error));
			return;
		}
		if (!codechat_settings_set(settings, args[1], g_steal_pointer(&value), &error)) {
			codechat_application_finish(app, g_steal_pointer(&error));
			return;
		}
	} else if (!codechat_settings_reset(settings, args[1], &error)) {
		codechat_application_finish(app, g_steal_pointer(&error));
		return;
	}
	if (!codechat_application_get_quiet(app))
		print_value(app, settings, args[1], TRUE);
	codechat_application_finish(app, NULL);
}
