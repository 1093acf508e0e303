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

@description('Azure Cache for Redis SKU (Basic has no SLA; Standard replicates).')
@allowed(['Basic', 'Standard', 'Premium'])
param redisSku string = 'Standard'

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
  identity: { type: 'SystemAssigned' }
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
        includedPaths: [ { path: '/*' } ]
        // Record payloads and their outbound state (`local`: base copy, parked
        // values) are never filtered on; the queried parts are copied to top-level
        // fields (`push_due_at`, `local_key`).
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

resource redis 'Microsoft.Cache/redis@2024-03-01' = {
  name: names.redis
  location: location
  // checkov:skip=CKV_AZURE_89: no VNet in this template: Flex apps reach it over its public endpoint; access is Entra-only (local/key auth disabled). Add private endpoints + Flex VNet integration for network isolation (docs/azure.md)
  properties: {
    sku: {
      name: redisSku
      family: redisSku == 'Premium' ? 'P' : 'C'
      capacity: 1
    }
    enableNonSslPort: false
    minimumTlsVersion: '1.2'
    publicNetworkAccess: 'Enabled'
    disableAccessKeyAuthentication: true
    redisConfiguration: {
      'aad-enabled': 'true'
    }
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
// - send / receive: Service Bus queues (Data Sender / Data Receiver, per queue);
// - keyVault: 'user' reads data-encryption keys, 'officer' may also write new versions;
// - redis: the provider rate limiter (Data Contributor access policy).
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
  }
  {
    function: 'SyncInboundWorker'
    executable: 'sync-inbound-worker'
    send: [ 'sync-inbound' ] // re-enqueue with ScheduledEnqueueTimeUtc (parked runs)
    receive: [ 'sync-inbound' ]
    keyVault: 'user'
    redis: true
  }
  {
    function: 'SyncOutboundWorker'
    executable: 'sync-outbound-worker'
    send: [ 'sync-outbound' ]
    receive: [ 'sync-outbound' ]
    keyVault: 'user'
    redis: true
  }
  {
    function: 'TokenRefresher'
    executable: 'token-refresher'
    send: []
    receive: []
    keyVault: 'officer' // rotates data-encryption keys
    redis: true
  }
  {
    function: 'WebhookReceiver'
    executable: 'webhook-receiver'
    send: [ 'sync-inbound' ] // follow-up jobs by REST with a deterministic MessageId
    receive: []
    keyVault: ''
    redis: false
  }
  {
    // The product API. "Sync now" is a store write (the scheduler sends the
    // job); sending is only for quarantine replay (webhook follow-ups, or a
    // message back to the queue it came from). It seals nothing and calls
    // no provider: no Key Vault, no Redis.
    function: 'SyncApi'
    executable: 'sync-api'
    send: [ 'sync-inbound', 'sync-outbound' ]
    receive: []
    keyVault: ''
    redis: false
  }
]

module functionApps 'modules/functionapp.bicep' = [for app in apps: {
  name: 'app-${app.executable}'
  params: {
    name: 'func-${baseName}-${app.executable}-${take(suffix, 6)}'
    location: location
    executable: app.executable
    sendQueues: app.send
    receiveQueues: app.receive
    keyVaultRole: app.keyVault
    redisAccess: app.redis
    storageAccountName: storage.name
    serviceBusName: serviceBus.name
    cosmosAccountName: cosmos.name
    keyVaultName: keyVault.name
    redisName: redis.name
    insightsName: insights.name
    maximumInstanceCount: maximumInstanceCount
    instanceMemoryMB: instanceMemoryMB
    appSettings: {
      ServiceBusConnection__fullyQualifiedNamespace: '${serviceBus.name}.servicebus.windows.net'
      SYNCBRIDGE_COSMOS_ENDPOINT: cosmos.properties.documentEndpoint
      SYNCBRIDGE_COSMOS_DATABASE: cosmosDatabaseName
      SYNCBRIDGE_COSMOS_CONTAINER: cosmosContainerName
      SYNCBRIDGE_COSMOS_REGION: location
      SYNCBRIDGE_KEY_VAULT_URI: keyVault.properties.vaultUri
      SYNCBRIDGE_REDIS_HOST: '${redis.properties.hostName}:${redis.properties.sslPort}'
      SYNC_SCHEDULER_SCHEDULE: syncSchedulerSchedule
      TOKEN_REFRESHER_SCHEDULE: tokenRefresherSchedule
    }
  }
  dependsOn: [ queues, cosmosState, blobService ]
}]

// ---------------------------------------------------------------- operator access

// The CLI (`SYNCBRIDGE_AZURE_CREDENTIAL=developer`, README "Deploy to Azure")
// writes connections and tasks to Cosmos DB and seals credentials with the data
// key in Key Vault (creating its first version), as the signed-in operator.
resource operatorCosmos 'Microsoft.DocumentDB/databaseAccounts/sqlRoleAssignments@2024-05-15' = if (!empty(operatorPrincipalId)) {
  parent: cosmos
  name: guid(cosmos.id, operatorPrincipalId, '00000000-0000-0000-0000-000000000002')
  properties: {
    roleDefinitionId: '${cosmos.id}/sqlRoleDefinitions/00000000-0000-0000-0000-000000000002'
    principalId: operatorPrincipalId
    scope: cosmos.id
  }
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

output functionAppNames array = [for (app, i) in apps: functionApps[i].outputs.name]
output serviceBusNamespace string = '${serviceBus.name}.servicebus.windows.net'
output cosmosEndpoint string = cosmos.properties.documentEndpoint
output keyVaultUri string = keyVault.properties.vaultUri
output storageAccountName string = storage.name
output location string = location
