// syncbridge on Azure: everything one environment needs, in one resource group.
//
//   az group create -n rg-syncbridge -l westeurope
//   az deployment group create -g rg-syncbridge -f infra/main.bicep -p baseName=sbdemo
//
// Five Function Apps on Flex Consumption (one custom-handler executable each),
// each with a system-assigned managed identity and only the data-plane roles it
// needs; every service is reached with Microsoft Entra tokens (local/key auth
// is disabled wherever the service allows it). See infra/README.md for the
// parameters and docs/azure.md for what was verified where.

targetScope = 'resourceGroup'

@description('Short lowercase prefix for every resource name (3-11 characters, letters and digits).')
@minLength(3)
@maxLength(11)
param baseName string

@description('Azure region for every resource.')
param location string = resourceGroup().location

@description('Service Bus duplicate-detection window (ISO 8601). Must be at least the senders\' retry horizon: a scheduler tick or webhook re-sent within it with the same MessageId is dropped. Max 7 days.')
param duplicateDetectionWindow string = 'P1D'

@description('Deliveries before a message is dead-lettered (the host redelivers on every non-2xx answer).')
@minValue(1)
param maxDeliveryCount int = 10

@description('NCRONTAB (6 fields) of the SyncScheduler timer.')
param syncSchedulerSchedule string = '0 * * * * *'

@description('NCRONTAB (6 fields) of the TokenRefresher timer.')
param tokenRefresherSchedule string = '0 */5 * * * *'

@description('Most instances each Function App may scale out to.')
param maximumInstanceCount int = 40

@description('Memory per instance (MB): 512, 2048 or 4096.')
@allowed([512, 2048, 4096])
param instanceMemoryMB int = 2048

@description('Azure Managed Redis SKU (Azure Cache for Redis can no longer be created in new subscriptions: docs/azure.md). Balanced_B0 is the smallest.')
param redisSku string = 'Balanced_B0'

@description('Whether to (re)create the Redis access-policy assignments. Keep true on the first deployment and whenever an app is added; re-putting existing assignments is known to fail (Azure/bicep#11465, Azure/azure-dev#6640), so pass false on later deployments that add no app (README, "Deploy to Azure").')
param assignRedisAccess bool = true

@description('The provider apps\' OAuth clients, e.g. [{"provider": "HUBSPOT", "clientId": "1234-…"}]: SYNCBRIDGE_OAUTH_<provider>_CLIENT_ID on the apps that refresh tokens, and _CLIENT_SECRET as a Key Vault reference to oauth-<provider>-client-secret.')
param oauthClients array = []

@description('The OAuth client secrets, by provider (the keys of oauthClients\' provider), e.g. {"HUBSPOT": "…"}: stored in Key Vault by the template.')
@secure()
param oauthClientSecrets object = {}

@description('The product\'s webhook endpoint (https): SYNCBRIDGE_PRODUCT_WEBHOOK_URL on the apps that raise product events (sync.completed, connection.created, connection.needs_reauth). Empty: no product webhooks.')
param productWebhookUrl string = ''

@description('The product webhook\'s Standard Webhooks signing secret (whsec_…): stored in Key Vault by the template (product-webhook-secret) and set as a Key Vault reference (SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET). Required when productWebhookUrl is set.')
@secure()
param productWebhookSecret string = ''

@description('Log Analytics retention in days.')
param logRetentionDays int = 30

@description('Object id of the person (or group) who runs the syncbridge CLI against this environment (`az ad signed-in-user show --query id -o tsv`): gets Cosmos DB Built-in Data Contributor and Key Vault Secrets Officer to add connections and seal their credentials. Empty: no operator access.')
param operatorPrincipalId string = ''

@description('Principal type of operatorPrincipalId.')
@allowed(['User', 'Group', 'ServicePrincipal'])
param operatorPrincipalType string = 'User'

var suffix = uniqueString(resourceGroup().id, baseName)
var names = {
  serviceBus: 'sb-${baseName}-${suffix}'
  cosmos: 'cosmos-${baseName}-${suffix}'
  keyVault: 'kv${baseName}${take(suffix, 8)}'
  redis: 'redis-${baseName}-${suffix}'
  storage: take('st${baseName}${suffix}', 24)
  logs: 'log-${baseName}-${suffix}'
  insights: 'appi-${baseName}-${suffix}'
}

// Names the CosmosStore uses (crates/syncbridge-cosmos): one container, partition key /pk.
var cosmosDatabaseName = 'syncbridge'
var cosmosContainerName = 'state'
var redisPort = 10000
// Cosmos DB data-plane role (not an Azure RBAC role): Built-in Data Contributor.
var cosmosDataContributor = '00000000-0000-0000-0000-000000000002'

// ---------------------------------------------------------------- monitoring

resource logs 'Microsoft.OperationalInsights/workspaces@2023-09-01' = {
  name: names.logs
  location: location
  properties: {
    sku: { name: 'PerGB2018' }
    retentionInDays: logRetentionDays
  }
}

resource insights 'Microsoft.Insights/components@2020-02-02' = {
  name: names.insights
  location: location
  kind: 'web'
  properties: {
    Application_Type: 'web'
    WorkspaceResourceId: logs.id
    // Ingestion only with Entra auth (the apps hold Monitoring Metrics Publisher).
    DisableLocalAuth: true
  }
}

// ---------------------------------------------------------------- Service Bus

resource serviceBus 'Microsoft.ServiceBus/namespaces@2022-10-01-preview' = {
  name: names.serviceBus
  location: location
  sku: { name: 'Standard', tier: 'Standard' }
  properties: {
    disableLocalAuth: true // no SAS keys: Entra roles only
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
  }
}

resource queues 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' = [for q in ['sync-inbound', 'sync-outbound']: {
  parent: serviceBus
  name: q
  properties: {
    requiresDuplicateDetection: true // set at creation only; MessageId dedup is how enqueue stays idempotent
    duplicateDetectionHistoryTimeWindow: duplicateDetectionWindow
    maxDeliveryCount: maxDeliveryCount
    deadLetteringOnMessageExpiration: true
    lockDuration: 'PT5M'
    defaultMessageTimeToLive: 'P14D'
    requiresSession: false
    enablePartitioning: false
  }
}]

// Namespace metrics (incoming, active and dead-lettered messages, …) go to Log
// Analytics, where docs/telemetry.md's dead-letter query reads them (AzureMetrics;
// exported metrics carry no per-queue dimension: use `az monitor metrics list`
// with EntityName for one queue).
resource serviceBusMetrics 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'metrics-to-logs'
  scope: serviceBus
  properties: {
    workspaceId: logs.id
    metrics: [ { category: 'AllMetrics', enabled: true } ]
  }
}

// ---------------------------------------------------------------- Cosmos DB

resource cosmos 'Microsoft.DocumentDB/databaseAccounts@2024-05-15' = {
  name: names.cosmos
  location: location
  kind: 'GlobalDocumentDB'
  // checkov:skip=CKV_AZURE_101: no VNet in this template: Flex apps reach it over its public endpoint; access is Entra-only (local/key auth disabled). Add private endpoints + Flex VNet integration for network isolation (docs/azure.md)
  // checkov:skip=CKV_AZURE_99: no VNet in this template: Flex apps reach it over its public endpoint; access is Entra-only (local/key auth disabled). Add private endpoints + Flex VNet integration for network isolation (docs/azure.md)
  properties: {
    databaseAccountOfferType: 'Standard'
    disableLocalAuth: true // key-less: data-plane RBAC (sqlRoleAssignments) only
    disableKeyBasedMetadataWriteAccess: true
    minimalTlsVersion: 'Tls12'
    consistencyPolicy: { defaultConsistencyLevel: 'Session' }
    locations: [
      { locationName: location, failoverPriority: 0, isZoneRedundant: false }
    ]
    capabilities: [ { name: 'EnableServerless' } ]
    backupPolicy: { type: 'Continuous', continuousModeProperties: { tier: 'Continuous7Days' } }
  }
}

resource cosmosDb 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases@2024-05-15' = {
  parent: cosmos
  name: cosmosDatabaseName
  properties: {
    resource: { id: cosmosDatabaseName }
  }
}

resource cosmosState 'Microsoft.DocumentDB/databaseAccounts/sqlDatabases/containers@2024-05-15' = {
  parent: cosmosDb
  name: cosmosContainerName
  properties: {
    resource: {
      id: cosmosContainerName
      // pk = connection id for everything of a connection, so a page of records
      // and its task cursor share a logical partition (one transactional batch).
      partitionKey: { paths: [ '/pk' ], kind: 'Hash', version: 2 }
      // Per-item TTL (webhook dedup entries carry `ttl`); nothing expires by default.
      defaultTtl: -1
      indexingPolicy: {
        indexingMode: 'consistent'
        automatic: true
        // `/doc/status/?` is the one path under the excluded `/doc/*` indexed
        // (the more precise path wins): the API's status filters.
        includedPaths: [ { path: '/*' }, { path: '/doc/status/?' } ]
        // Record payloads and their outbound state (`local`: base copy, parked
        // values) are never filtered on; the queried parts are copied to top-level
        // fields (`push_due_at`, `local_key`, `conflict_key`).
        excludedPaths: [ { path: '/data/*' }, { path: '/local/*' }, { path: '/doc/*' }, { path: '/"_etag"/?' } ]
        // The multi-property ORDER BYs / filter+ORDER BY of CosmosStore (COMPOSITE_INDEXES in the crate).
        compositeIndexes: [
          [
            { path: '/priority', order: 'ascending' }
            { path: '/eligible_at', order: 'ascending' }
          ]
          [
            { path: '/started_at', order: 'descending' }
            { path: '/run_id', order: 'descending' }
          ]
          // The records feed (partition-scoped): object equality, ORDER BY seq.
          [
            { path: '/object', order: 'ascending' }
            { path: '/seq', order: 'ascending' }
          ]
          // The API's status filters: connections?status= (ORDER BY status, id)
          // and runs?status= with one status (ORDER BY status, newest first).
          [
            { path: '/doc/status', order: 'ascending' }
            { path: '/pk', order: 'ascending' }
          ]
          [
            { path: '/doc/status', order: 'descending' }
            { path: '/started_at', order: 'descending' }
            { path: '/run_id', order: 'descending' }
          ]
          // A connection's audit pages (partition-scoped): ORDER BY log_order, id.
          [
            { path: '/log_order', order: 'ascending' }
            { path: '/id', order: 'ascending' }
          ]
        ]
      }
    }
  }
}

// ---------------------------------------------------------------- Key Vault

resource keyVault 'Microsoft.KeyVault/vaults@2023-07-01' = {
  name: names.keyVault
  location: location
  // checkov:skip=CKV_AZURE_109: no VNet in this template: Flex apps reach it over its public endpoint; access is Entra-only (local/key auth disabled). Add private endpoints + Flex VNet integration for network isolation (docs/azure.md)
  // checkov:skip=CKV_AZURE_189: no VNet in this template: Flex apps reach it over its public endpoint; access is Entra-only (local/key auth disabled). Add private endpoints + Flex VNet integration for network isolation (docs/azure.md)
  properties: {
    tenantId: subscription().tenantId
    sku: { family: 'A', name: 'standard' }
    enableRbacAuthorization: true
    enableSoftDelete: true
    softDeleteRetentionInDays: 90
    enablePurgeProtection: true
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
  }
}

// ---------------------------------------------------------------- Redis

// Azure Managed Redis: Azure Cache for Redis (Microsoft.Cache/redis) cannot be
// created in new subscriptions any more (docs/azure.md). TLS only, Entra only.
resource redis 'Microsoft.Cache/redisEnterprise@2025-04-01' = {
  name: names.redis
  location: location
  sku: { name: redisSku }
  properties: {
    minimumTlsVersion: '1.2'
  }
}

resource redisDb 'Microsoft.Cache/redisEnterprise/databases@2025-04-01' = {
  parent: redis
  name: 'default' // the only database name Azure Managed Redis allows
  properties: {
    clientProtocol: 'Encrypted'
    port: redisPort
    // One proxied endpoint: the limiter's client is not cluster-aware, and its
    // keys of one script call share a hash tag anyway.
    clusteringPolicy: 'EnterpriseCluster'
    // Rate-limit state must not be evicted (it would hand out budget twice).
    evictionPolicy: 'NoEviction'
    accessKeysAuthentication: 'Disabled'
  }
}

// ---------------------------------------------------------------- host storage

resource storage 'Microsoft.Storage/storageAccounts@2023-05-01' = {
  name: names.storage
  location: location
  kind: 'StorageV2'
  // checkov:skip=CKV_AZURE_35: no VNet in this template: Flex apps reach it over its public endpoint; access is Entra-only (local/key auth disabled). Add private endpoints + Flex VNet integration for network isolation (docs/azure.md)
  // checkov:skip=CKV_AZURE_59: no VNet in this template: Flex apps reach it over its public endpoint; access is Entra-only (local/key auth disabled). Add private endpoints + Flex VNet integration for network isolation (docs/azure.md)
  // checkov:skip=CKV_AZURE_43: the name is computed ('st' + baseName + uniqueString, take 24): lowercase letters and digits, 3-24 characters, which checkov cannot evaluate
  sku: { name: 'Standard_GZRS' }
  properties: {
    allowSharedKeyAccess: false // AzureWebJobsStorage__accountName + Storage Blob Data Owner
    allowBlobPublicAccess: false
    minimumTlsVersion: 'TLS1_2'
    supportsHttpsTrafficOnly: true
    defaultToOAuthAuthentication: true
    allowCrossTenantReplication: false
    isLocalUserEnabled: false
    isSftpEnabled: false
    publicNetworkAccess: 'Enabled'
    networkAcls: { defaultAction: 'Allow', bypass: 'AzureServices' }
    encryption: {
      requireInfrastructureEncryption: true
      keySource: 'Microsoft.Storage'
      services: {
        blob: { enabled: true, keyType: 'Account' }
        file: { enabled: true, keyType: 'Account' }
        queue: { enabled: true, keyType: 'Account' }
        table: { enabled: true, keyType: 'Account' }
      }
    }
  }
}

resource blobService 'Microsoft.Storage/storageAccounts/blobServices@2023-05-01' = {
  parent: storage
  name: 'default'
  properties: {
    deleteRetentionPolicy: { enabled: true, days: 7 }
    containerDeleteRetentionPolicy: { enabled: true, days: 7 }
  }
}

resource queueService 'Microsoft.Storage/storageAccounts/queueServices@2023-05-01' = {
  parent: storage
  name: 'default'
}

// Queue service logging goes to Log Analytics (read, write, delete).
resource queueLogs 'Microsoft.Insights/diagnosticSettings@2021-05-01-preview' = {
  name: 'queue-logs'
  scope: queueService
  properties: {
    workspaceId: logs.id
    logs: [
      { category: 'StorageRead', enabled: true }
      { category: 'StorageWrite', enabled: true }
      { category: 'StorageDelete', enabled: true }
    ]
  }
}

// ---------------------------------------------------------------- the six apps

// Which data-plane access each app gets (least privilege):
// - send / receive: Service Bus queues (Data Sender / Data Owner, per queue: the
//   trigger's scale monitor reads queue length, which needs Data Owner);
// - keyVault: 'user' reads data-encryption keys, 'officer' may also write new versions;
// - redis: the provider rate limiter (the 'default' access policy, SYNCBRIDGE_REDIS_*);
// - oauth: the provider apps' OAuth clients (SYNCBRIDGE_OAUTH_*, Key Vault references);
// - product: the product webhook (SYNCBRIDGE_PRODUCT_WEBHOOK_URL, and _SECRET as a Key
//   Vault reference: such an app reads Key Vault secrets at least as 'user').
// Every app gets Cosmos DB Built-in Data Contributor (all state goes through the
// store), Storage Blob Data Owner on the host storage and Monitoring Metrics Publisher.
var apps = [
  {
    function: 'SyncScheduler'
    executable: 'sync-scheduler'
    send: [ 'sync-inbound', 'sync-outbound' ]
    receive: []
    keyVault: ''
    redis: false
    oauth: false
    product: false
  }
  {
    function: 'SyncInboundWorker'
    executable: 'sync-inbound-worker'
    send: [ 'sync-inbound' ] // re-enqueue with ScheduledEnqueueTimeUtc (parked runs)
    receive: [ 'sync-inbound' ]
    keyVault: 'user'
    redis: true
    oauth: true
    product: true // sync.completed; connection.needs_reauth (a refresh refused)
  }
  {
    function: 'SyncOutboundWorker'
    executable: 'sync-outbound-worker'
    send: [ 'sync-outbound' ]
    receive: [ 'sync-outbound' ]
    keyVault: 'user'
    redis: true
    oauth: true
    product: true // connection.needs_reauth
  }
  {
    function: 'TokenRefresher'
    executable: 'token-refresher'
    send: []
    receive: []
    keyVault: 'officer' // rotates data-encryption keys
    redis: true
    oauth: true
    product: true // connection.needs_reauth
  }
  {
    function: 'WebhookReceiver'
    executable: 'webhook-receiver'
    send: [ 'sync-inbound' ] // follow-up jobs by REST with a deterministic MessageId
    receive: []
    keyVault: ''
    redis: false
    oauth: false
    product: false
  }
  {
    // The product API. "Sync now" is a store write (the scheduler sends the
    // job); sending is only for quarantine replay (webhook follow-ups, or a
    // message back to the queue it came from). It seals nothing and calls
    // no provider: no Redis, and no Key Vault unless the product webhook is
    // set (its secret is a Key Vault reference: 'user', see below).
    function: 'SyncApi'
    executable: 'sync-api'
    // Data Sender only: so GET /v1/health reports the queues' depths as
    // 'unknown' (reading a queue's runtime properties needs Data Owner, which
    // would also let the API receive and delete messages; docs/azure.md,
    // "Roles"). To have the counts, add these queues to `receive` (Data Owner).
    send: [ 'sync-inbound', 'sync-outbound' ]
    receive: []
    keyVault: ''
    redis: false
    oauth: false
    product: true // connection.created
  }
]

var appName = [for app in apps: 'func-${baseName}-${app.executable}-${take(suffix, 6)}']

// Settings only some apps get. Every app's settings come from this template
// alone (siteConfig.appSettings replaces the whole set on each deployment).
var redisSettings = {
  SYNCBRIDGE_REDIS_URL: 'rediss://${redis.properties.hostName}:${redisPort}'
  SYNCBRIDGE_REDIS_AUTH: 'entra'
}
var oauthIdSettings = [for c in oauthClients: {
  name: 'SYNCBRIDGE_OAUTH_${c.provider}_CLIENT_ID'
  value: c.clientId
}]
var oauthSecretSettings = [for c in oauthClients: {
  name: 'SYNCBRIDGE_OAUTH_${c.provider}_CLIENT_SECRET'
  value: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=oauth-${toLower(replace(c.provider, '_', '-'))}-client-secret)'
}]
var oauthSettings = concat(oauthIdSettings, oauthSecretSettings)
var productWebhookSecretName = 'product-webhook-secret'
var productSettings = empty(productWebhookUrl) ? [] : [
  { name: 'SYNCBRIDGE_PRODUCT_WEBHOOK_URL', value: productWebhookUrl }
  {
    name: 'SYNCBRIDGE_PRODUCT_WEBHOOK_SECRET'
    value: '@Microsoft.KeyVault(VaultName=${keyVault.name};SecretName=${productWebhookSecretName})'
  }
]

resource productSecret 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = if (!empty(productWebhookUrl)) {
  parent: keyVault
  name: productWebhookSecretName
  // checkov:skip=CKV_AZURE_41: the product webhook secret is rotated with the product's endpoint, not on a date the template could know
  // checkov:skip=CKV_AZURE_114: contentType is set below; checkov 3.3.30 does not read the properties of a conditional resource (`= if (…)`): the same resource without the condition passes this check
  properties: {
    value: productWebhookSecret
    contentType: 'text/plain'
  }
}

resource oauthSecrets 'Microsoft.KeyVault/vaults/secrets@2023-07-01' = [for c in oauthClients: {
  parent: keyVault
  name: 'oauth-${toLower(replace(c.provider, '_', '-'))}-client-secret'
  // checkov:skip=CKV_AZURE_41: an OAuth client secret expires when the provider app's secret is rotated, not on a date the template could know
  properties: {
    value: oauthClientSecrets[c.provider]
    contentType: 'text/plain'
  }
}]

module functionApps 'modules/functionapp.bicep' = [for (app, i) in apps: {
  name: 'app-${app.executable}'
  params: {
    name: appName[i]
    location: location
    executable: app.executable
    sendQueues: app.send
    receiveQueues: app.receive
    // A Key Vault reference needs secret read access: product apps read at least as 'user'.
    keyVaultRole: (app.product && !empty(productWebhookUrl) && empty(app.keyVault)) ? 'user' : app.keyVault
    storageAccountName: storage.name
    serviceBusName: serviceBus.name
    keyVaultName: keyVault.name
    insightsName: insights.name
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    appSettings: union({
      ServiceBusConnection__fullyQualifiedNamespace: '${serviceBus.name}.servicebus.windows.net'
      SYNCBRIDGE_COSMOS_ENDPOINT: cosmos.properties.documentEndpoint
      SYNCBRIDGE_COSMOS_DATABASE: cosmosDatabaseName
      SYNCBRIDGE_COSMOS_CONTAINER: cosmosContainerName
      SYNCBRIDGE_COSMOS_REGION: location
      SYNCBRIDGE_KEY_VAULT_URI: keyVault.properties.vaultUri
      SYNC_SCHEDULER_SCHEDULE: syncSchedulerSchedule
      TOKEN_REFRESHER_SCHEDULE: tokenRefresherSchedule
    }, app.redis ? redisSettings : {})
    extraSettings: concat(app.oauth ? oauthSettings : [], app.product ? productSettings : [])
  }
  dependsOn: [ queues, cosmosState, blobService, oauthSecrets, productSecret ]
}]

// ---------------------------------------------------------------- serialized data-plane grants

// Cosmos DB refuses concurrent control-plane operations on one account
// ("another user operation in progress"), and a SQL role assignment is one:
// the apps' are made one at a time (@batchSize(1)), after the database and
// container, and the operator's after all of them. infra/tests (cargo test -p
// xtask --test infra) fails if two of these could run at once.
@batchSize(1)
resource cosmosAppRoles 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = [for (app, i) in apps: {
  parent: cosmos
  name: guid(cosmos.id, resourceId('Microsoft.Web/sites', appName[i]), cosmosDataContributor)
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/${cosmosDataContributor}'
    principalId: functionApps[i].outputs.principalId
    scope: cosmos.id
  }
  dependsOn: [ cosmosDb, cosmosState ]
}]

// Azure Managed Redis applies one access-policy assignment at a time too
// (Azure/azure-dev#6640): one at a time, apps using Redis only.
@batchSize(1)
resource redisAccess 'Microsoft.Cache/redisEnterprise/databases/accessPolicyAssignments@2025-04-01' = [for (app, i) in apps: if (app.redis && assignRedisAccess) {
  parent: redisDb
  name: take('sync${uniqueString(resourceId('Microsoft.Web/sites', appName[i]))}', 60)
  properties: {
    accessPolicyName: 'default'
    user: { objectId: functionApps[i].outputs.principalId }
  }
}]

// ---------------------------------------------------------------- operator access

// The CLI (`SYNCBRIDGE_AZURE_CREDENTIAL=developer`, README "Deploy to Azure")
// writes connections and tasks to Cosmos DB and seals credentials with the data
// key in Key Vault (creating its first version), as the signed-in operator;
// `quarantine replay` and `changes` send to the queues (Data Sender).
resource operatorCosmos 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = if (!empty(operatorPrincipalId)) {
  parent: cosmos
  name: guid(cosmos.id, operatorPrincipalId, '00000000-0000-0000-0000-000000000002')
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002'
    principalId: operatorPrincipalId
    scope: cosmos.id
  }
  // After the apps' (one control-plane operation at a time) and the container.
  dependsOn: [ cosmosAppRoles, cosmosDb, cosmosState ]
}

resource operatorSecrets 'Microsoft.Authorization/roleAssignments@2022-04-01' = if (!empty(operatorPrincipalId)) {
  name: guid(keyVault.id, operatorPrincipalId, 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')
  scope: keyVault
  properties: {
    // Key Vault Secrets Officer
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', 'b86a8fe4-44ce-4948-aee5-eccb2c155cd7')
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
}

resource operatorQueue 'Microsoft.ServiceBus/namespaces/queues@2022-10-01-preview' existing = [for q in ['sync-inbound', 'sync-outbound']: {
  parent: serviceBus
  name: q
}]

resource operatorSender 'Microsoft.Authorization/roleAssignments@2022-04-01' = [for (q, i) in ['sync-inbound', 'sync-outbound']: if (!empty(operatorPrincipalId)) {
  name: guid(serviceBus.id, q, operatorPrincipalId, '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39')
  scope: operatorQueue[i]
  properties: {
    // Azure Service Bus Data Sender
    roleDefinitionId: subscriptionResourceId('Microsoft.Authorization/roleDefinitions', '69a216fc-b8fb-44d8-bc22-1f3c2cd27a39')
    principalId: operatorPrincipalId
    principalType: operatorPrincipalType
  }
  dependsOn: [ queues ]
}]

output functionAppNames array = [for (app, i) in apps: functionApps[i].outputs.name]
output redisUrl string = 'rediss://${redis.properties.hostName}:${redisPort}'
output serviceBusNamespace string = '${serviceBus.name}.servicebus.windows.net'
output cosmosEndpoint string = cosmos.properties.documentEndpoint
output keyVaultUri string = keyVault.properties.vaultUri
output storageAccountName string = storage.name
output location string = location
