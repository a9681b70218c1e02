/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat"

#include "config.h"

#include <glib/gi18n.h>

#include "codechat-cmd.h"

/* replies are checked, not trusted: a missing or mistyped member is NULL */

const gchar *
codechat_cmd_get_string(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_STRING)
		return NULL;
	return json_node_get_string(node);
}

gboolean
codechat_cmd_get_int(JsonObject *obj, const gchar *name, gint64 *value)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_INT64)
		return FALSE;
	*value = json_node_get_int(node);
	return TRUE;
}

gboolean
codechat_cmd_get_bool(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_VALUE(node) ||
	    json_node_get_value_type(node) != G_TYPE_BOOLEAN)
		return FALSE;
	return json_node_get_boolean(node);
}

JsonArray *
codechat_cmd_get_array(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_ARRAY(node))
		return NULL;
	return json_node_get_array(node);
}

JsonObject *
codechat_cmd_get_object(JsonObject *obj, const gchar *name)
{
	JsonNode *node = json_object_get_member(obj, name);

	if (node == NULL || !JSON_NODE_HOLDS_OBJECT(node))
		return NULL;
	return json_node_get_object(node);
}

GError *
codechat_cmd_bad_reply_error(JsonObject *reply, const gchar *expected)
{
	const gchar *type = codechat_cmd_get_string(reply, "type");

	return g_error_new(CODECHAT_ERROR,
			   CODECHAT_ERROR_INTERNAL,
			   _("the server sent a malformed reply (%s, expected %s)"),
			   type != NULL ? type : "no type",
			   expected);
}

/* a request object with its type, to fill in */
JsonObject *
codechat_cmd_request_new(const gchar *type)
{
	JsonObject *obj = json_object_new();

	json_object_set_string_member(obj, "type", type);
	return obj;
}
